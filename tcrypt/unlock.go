package tcrypt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
)

// ErrWrongPassword means no header decrypted with the password: every
// location was tried with every key derivation and every algorithm. (The
// header may also be damaged: trial decryption cannot tell.)
var ErrWrongPassword = errors.New("no header decrypts with this password")

// Options say what Unlock tries.
type Options struct {
	Format Format
	// PRF, if not empty, is the only PRF tried (see PRFNames).
	PRF string
	// PIM is VeraCrypt's personal iterations multiplier; 0 is the default.
	PIM int
	// System looks for a system-encryption header at SystemHeaderOffset
	// instead of a volume's.
	System bool
	// Backup tries the backup headers at the end of the volume instead of
	// the primary ones.
	Backup bool
	// Kinds, if not nil, restricts the header kinds tried (e.g. only the
	// hidden volume's, to protect it).
	Kinds []Kind
	// Workers is how many key derivations run at once (0: GOMAXPROCS).
	// Argon2id derivations run one at a time whatever it is, for memory.
	Workers int
}

// Attempt is one key derivation of an unlock: a KDF at one header location.
// Each derived key is tried with every encryption algorithm.
type Attempt struct {
	Location Location
	KDF      KDF
	// Legacy attempts try TrueCrypt 4's LRW and CBC header encryptions
	// (legacy.go) instead, to recognise and refuse such a volume.
	Legacy bool
}

// Plan returns the attempts Unlock makes for a file of size bytes, in
// order: at most len(Locations) × len(KDFs) derivations, each followed by
// len(cipher.VeraCryptAlgorithms()) decryptions of 448 bytes; then, where
// TrueCrypt 4 may have made the volume (no PIM, no system encryption, no
// backup header), the Legacy attempts: at most 2 places × 3 PRFs, each
// followed by len(LegacyAlgorithms()) decryptions, tried only once every
// other attempt failed. That is the whole work of an unlock, fixed by opts
// and the file size alone: unlike a LUKS or cryptvol header, a VeraCrypt
// header holds no KDF parameters, so a file cannot make it any larger.
//
// The order interleaves locations per KDF (the normal header, then the
// hidden one, with SHA-512; then with Whirlpool; ...), so that with several
// workers a hidden volume's password is found as soon as an outer one's.
func Plan(size int64, opts Options) ([]Attempt, error) {
	kdfs, err := KDFs(opts.Format, opts.PRF, opts.PIM, opts.System)
	if err != nil {
		return nil, err
	}
	var locs []Location
	for _, l := range Locations(opts.Format, size, opts.System, opts.Backup) {
		if opts.Kinds == nil || containsKind(opts.Kinds, l.Kind) {
			locs = append(locs, l)
		}
	}
	if len(locs) == 0 {
		return nil, fmt.Errorf("a %d-byte file is too small to hold a header there", size)
	}
	var plan []Attempt
	for _, k := range kdfs {
		for _, l := range locs {
			plan = append(plan, Attempt{Location: l, KDF: k})
		}
	}
	return append(plan, legacyPlan(size, opts)...), nil
}

func containsKind(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// Unlocked is a header opened with a password: its fields, where it was,
// how its key was derived and encrypted, and the master key area, which
// Close wipes.
type Unlocked struct {
	Header    *Header
	Location  Location
	KDF       KDF
	Algorithm string // a name of cipher.VeraCryptAlgorithms
	Salt      [SaltSize]byte
	keys      *memguard.LockedBuffer // KeyAreaSize bytes
}

// Keys returns the master key area (KeyAreaSize bytes), owned by u.
func (u *Unlocked) Keys() []byte { return u.keys.Bytes() }

// MasterKey returns the key of the data's sector cipher: the leading
// cipher.Spec.KeySize bytes of the key area, owned by u.
func (u *Unlocked) MasterKey() []byte {
	spec, _ := cipher.VeraCryptSpec(u.Algorithm)
	return u.keys.Bytes()[:spec.KeySize]
}

// Close wipes the master key area.
func (u *Unlocked) Close() {
	if u.keys != nil {
		u.keys.Destroy()
	}
}

// Unlock finds the header that password opens in r (a file of size bytes):
// it tries every attempt of Plan, each derived key with every encryption
// algorithm, several derivations at once. password is the passphrase after
// keyfiles were applied (Password); it is not retained.
//
// The first header, in plan order, whose magic and checksums are right wins;
// its fields are then checked (Header.Area with the file size), and a header
// that fails there is an error (a *HeaderError), not a wrong password.
// When no header is found, the Legacy attempts of the plan run: a header of
// TrueCrypt 4.3a or older (LRW or CBC mode) that the password opens is a
// *LegacyError, which says what the volume is; cryptvol does not open it.
// Unlock stops within milliseconds after ctx is cancelled, returning
// ctx.Err() (package kdf's derivations check it as they go). Every
// derivation takes part in the kdf.Session ctx carries: it bounds the work
// of the whole unlock (a derivation over its budget stops the unlock with a
// *kdf.BudgetError, unless a header was found earlier in plan order).
func Unlock(ctx context.Context, r io.ReaderAt, size int64, password []byte, opts Options) (*Unlocked, error) {
	plan, err := Plan(size, opts)
	if err != nil {
		return nil, err
	}
	raw := map[int64][]byte{}
	for _, a := range plan {
		off := a.Location.Offset
		if raw[off] != nil {
			continue
		}
		b := make([]byte, HeaderSize)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("reading the %s at %d: %w", a.Location, off, err)
		}
		raw[off] = b
	}
	// The workers' copy of the password, wiped once the last of them is
	// done (runAttempts waits for them), before Unlock returns.
	pw := memguard.NewBufferFromBytes(append([]byte(nil), password...))
	defer pw.Destroy()
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	n := slices.IndexFunc(plan, func(a Attempt) bool { return a.Legacy })
	if n < 0 {
		n = len(plan)
	}
	found, err := runAttempts(ctx, plan[:n], workers, func(ctx context.Context, a Attempt) (*Unlocked, error) {
		return try(ctx, raw[a.Location.Offset], pw.Bytes(), a, opts)
	})
	if found != nil || err != nil || n == len(plan) {
		if found == nil && err == nil {
			err = ErrWrongPassword
		}
		return found, err
	}
	// Every XTS attempt failed: a header of TrueCrypt 4 or older is a
	// *LegacyError, refused with its mode.
	_, err = runAttempts(ctx, plan[n:], workers, func(ctx context.Context, a Attempt) (*Unlocked, error) {
		return nil, tryLegacy(ctx, raw[a.Location.Offset], pw.Bytes(), a)
	})
	if err == nil {
		err = ErrWrongPassword
	}
	return nil, err
}

// runAttempts runs the attempts of plan with workers derivations at once and
// returns the first success or error (other than errNotThis) in plan order;
// nil and nil when every attempt returned errNotThis. It returns once every
// attempt it started is done.
func runAttempts(ctx context.Context, plan []Attempt, workers int, try func(context.Context, Attempt) (*Unlocked, error)) (*Unlocked, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		u   *Unlocked
		err error
	}
	results := make([]chan result, len(plan))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	var argon sync.Mutex // one Argon2id derivation at a time
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(plan)) {
		wg.Go(func() {
			for i := range next {
				a := plan[i]
				if a.KDF.PRF == PRFArgon2id {
					argon.Lock()
				}
				u, err := try(ctx, a)
				if a.KDF.PRF == PRFArgon2id {
					argon.Unlock()
				}
				results[i] <- result{u, err}
			}
		})
	}
	// Feed the workers in plan order, and stop feeding once cancelled.
	go func() {
		defer close(next)
		for i := range plan {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Collect in plan order: the first success wins; later attempts are
	// cancelled, and a success that comes later in plan order than a
	// success found later in time cannot happen, since the results are
	// read in order.
	var found *Unlocked
	var ferr error
	for i := range plan {
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			r = result{err: ctx.Err()}
		}
		if r.err == nil && r.u != nil {
			found = r.u
			break
		}
		if r.err != nil && !errors.Is(r.err, errNotThis) {
			ferr = r.err
			break
		}
	}
	// Stop the attempts still running and wait for them: every derivation
	// checks ctx as it goes, so this takes milliseconds, and no worker is
	// left reading the password's locked memory after Unlock returns (a
	// program that exits right away destroys that memory under it).
	cancel()
	wg.Wait()
	for _, ch := range results {
		select {
		case r := <-ch:
			if r.u != nil && r.u != found {
				r.u.Close()
			}
		default:
		}
	}
	if ferr != nil {
		return nil, ferr
	}
	return found, nil
}

// errNotThis is an attempt that did not open a header.
var errNotThis = errors.New("not this attempt")

// try derives the header key of one attempt and decrypts the header with
// every encryption algorithm.
func try(ctx context.Context, raw, password []byte, a Attempt, opts Options) (*Unlocked, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hk, err := a.KDF.Derive(ctx, password, raw[:SaltSize])
	if err != nil {
		return nil, err
	}
	defer hk.Destroy()
	return decryptHeader(raw, hk.Bytes(), a, opts.Format)
}

// decryptHeader tries every encryption algorithm on raw with the header key
// hk and returns the header that the right one reveals.
func decryptHeader(raw, hk []byte, a Attempt, f Format) (*Unlocked, error) {
	plain := memguard.NewBuffer(EncryptedSize)
	defer plain.Destroy()
	keys := memguard.NewBuffer(KeyAreaSize)
	for _, name := range cipher.VeraCryptAlgorithms() {
		if err := cryptHeader(name, hk, plain.Bytes(), raw[SaltSize:], false); err != nil {
			continue // a header key with equal XTS halves: not a header of this algorithm
		}
		h, err := Parse(plain.Bytes(), keys.Bytes())
		if err != nil {
			var he *HeaderError
			if errors.As(err, &he) {
				keys.Destroy()
				return nil, fmt.Errorf("the %s (%s, %s): %w", a.Location, a.KDF, name, err)
			}
			continue
		}
		if !headerMatches(h, a) {
			continue
		}
		if f == VeraCrypt && h.Magic == MagicTrueCrypt && h.Version < 4 {
			keys.Destroy()
			return nil, fmt.Errorf("the %s (%s, %s): %w", a.Location, a.KDF, name, &HeaderError{"version",
				fmt.Sprintf("%d: a TrueCrypt 5 volume, which VeraCrypt does not open (open it as a TrueCrypt volume)", h.Version)})
		}
		u := &Unlocked{Header: h, Location: a.Location, KDF: a.KDF, Algorithm: name, keys: keys}
		copy(u.Salt[:], raw[:SaltSize])
		return u, nil
	}
	keys.Destroy()
	return nil, errNotThis
}

// headerMatches says whether a header found with attempt a is one its
// format accepts there: "VERA" only with VeraCrypt's iteration counts,
// "TRUE" only with TrueCrypt's. Anything else is, as far as anyone can
// tell, not a header. (A TrueCrypt 5 header found as a VeraCrypt volume is
// refused by the caller: VeraCrypt's TrueCrypt mode opened TrueCrypt 6 and
// 7 volumes only.)
func headerMatches(h *Header, a Attempt) bool {
	if a.KDF.TrueCrypt {
		return h.Magic == MagicTrueCrypt
	}
	return h.Magic == MagicVeraCrypt
}

// cryptHeader encrypts or decrypts the 448 bytes after a header's salt with
// the header key hk under the named algorithm: one XTS data unit, number 0.
func cryptHeader(algorithm string, hk, dst, src []byte, encrypt bool) error {
	spec, err := cipher.VeraCryptSpec(algorithm)
	if err != nil {
		return err
	}
	state := memguard.NewBuffer(spec.StateSize())
	defer state.Destroy()
	s, err := cipher.NewSector(spec, hk[:spec.KeySize], state.Bytes(), EncryptedSize)
	if err != nil {
		return err
	}
	if encrypt {
		s.Encrypt(dst, src, 0)
	} else {
		s.Decrypt(dst, src, 0)
	}
	return nil
}
