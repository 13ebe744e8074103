package kdf

// cleanStackSize is how much stack OnCleanStack makes room for before f runs,
// and overwrites after: far more than the key schedules, hashes and AEADs run
// on it need (a few KiB).
const cleanStackSize = 64 << 10

// OnCleanStack runs f on a goroutine of its own and returns when f has
// returned (re-panicking a panic of f). That goroutine's stack is grown to
// cleanStackSize before f runs and overwritten with zeros after, so that what
// f leaves in its stack frames (a key that a hash, an AEAD or a key schedule
// of the standard library or golang.org/x/crypto copied into its locals) does
// not stay in memory after it. Go grows a goroutine's stack by copying it to a
// larger one and freeing the old one as it is, which is why the room is made
// before f runs. It cannot help with the rarer copy the garbage collector
// makes when it shrinks a stack while f runs (SECURITY.md "Limits of memory
// hygiene").
func OnCleanStack(f func()) {
	done := make(chan any, 1)
	go func() {
		var p any
		stackWipe()
		func() {
			defer func() { p = recover() }()
			f()
		}()
		stackWipe()
		done <- p
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}

// stackWipe zeroes cleanStackSize bytes of stack below its caller's frame
// (growing the stack first if it is smaller).
//
//go:noinline
func stackWipe() byte {
	var b [cleanStackSize]byte
	return stackTouch(b[:])
}

//go:noinline
func stackTouch(b []byte) byte { return b[0] ^ b[len(b)-1] }
