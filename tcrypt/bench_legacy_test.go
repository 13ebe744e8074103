package tcrypt

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/kdf"
)

// BenchmarkLegacyCost measures what the legacy attempts (TrueCrypt 4's LRW
// and CBC) add to a wrong password, as Unlock runs them: in one kdf.Session,
// after the XTS attempts, on every CPU. Each iteration times the XTS part
// and then the legacy part of the same plan, side by side, and reports both
// and the ratio of the whole to the XTS part. VeraCrypt's plan takes tens of
// seconds: run it with -benchtime 1x.
//
//	go test -run '^$' -bench BenchmarkLegacyCost -benchtime 3x ./tcrypt
func BenchmarkLegacyCost(b *testing.B) {
	const size = 1 << 20
	file := make([]byte, size)
	for i := range file {
		file[i] = byte(i*31 + i>>9)
	}
	for _, f := range []Format{TrueCrypt, VeraCrypt} {
		b.Run(f.String(), func(b *testing.B) {
			opts := Options{Format: f}
			plan, err := Plan(size, opts)
			if err != nil {
				b.Fatal(err)
			}
			n := slices.IndexFunc(plan, func(a Attempt) bool { return a.Legacy })
			var xts, legacy time.Duration
			for b.Loop() {
				s := kdf.NewSession(0)
				ctx := kdf.NewContext(context.Background(), s)
				raw := func(a Attempt) []byte { return file[a.Location.Offset : a.Location.Offset+HeaderSize] }
				start := time.Now()
				u, err := runAttempts(ctx, plan[:n], runtime.GOMAXPROCS(0), func(ctx context.Context, a Attempt) (*Unlocked, error) {
					return try(ctx, raw(a), []byte("wrong"), a, opts)
				})
				mid := time.Now()
				if u != nil || err != nil {
					b.Fatal(u, err)
				}
				_, err = runAttempts(ctx, plan[n:], runtime.GOMAXPROCS(0), func(ctx context.Context, a Attempt) (*Unlocked, error) {
					return nil, tryLegacy(ctx, raw(a), []byte("wrong"), a)
				})
				if err != nil {
					b.Fatal(err)
				}
				xts += mid.Sub(start)
				legacy += time.Since(mid)
				s.Close()
			}
			b.ReportMetric(float64(xts.Milliseconds())/float64(b.N), "xts-ms/op")
			b.ReportMetric(float64(legacy.Milliseconds())/float64(b.N), "legacy-ms/op")
			b.ReportMetric(float64(xts+legacy)/float64(xts), "ratio")
		})
	}
}
