package kdf

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/awnumar/memguard"
)

// Work is an amount of key-derivation work, counted in KiB of memory that
// Argon2 processes once (one 1 KiB block): a derivation with m KiB and t
// passes is m·t, a few microseconds of one core per unit. Other functions
// express their cost in the same unit, as the time they take compares with
// Argon2's (a format adding one says how it counts).
type Work uint64

// String renders w as the size of memory passes it stands for ("64G").
func (w Work) String() string {
	if w > 1<<32-1 && w%(1<<20) == 0 {
		return fmt.Sprintf("%dG", w>>20)
	}
	if w > 1<<32-1 {
		return fmt.Sprintf("%.1fG", float64(w)/(1<<20))
	}
	return formatKiB(uint32(w))
}

// Work is what one derivation with p costs.
func (p Params) Work() Work { return Work(p.Memory) * Work(p.Iterations) }

// DefaultBudget is the key-derivation work one unlock may spend unless told
// otherwise: twice MaxWork, the most one cryptvol keyslot may ask for, or 128
// GiB of memory passes. Eight keyslots calibrated to two seconds each fit in it
// on any machine we know of; a hostile header with eight maximum-cost
// keyslots does not (unlocking it with a wrong passphrase would take a quarter
// of an hour, or half of one before derivations were shared, see Session).
const DefaultBudget = 2 * Work(MaxWork)

// ErrBudget matches (errors.Is) a *BudgetError.
var ErrBudget = errors.New("key derivation work over the unlock budget")

// BudgetError is a derivation that was not started because it would take the
// unlock over its budget.
type BudgetError struct {
	Budget Work // the session's budget
	Spent  Work // spent before this derivation
	Need   Work // what this derivation (or, from a format, every one not done) needs
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("key derivation needs %s of memory passes, and %s of the unlock budget of %s is left", e.Need, e.Budget-min(e.Spent, e.Budget), e.Budget)
}

func (e *BudgetError) Is(target error) bool { return target == ErrBudget }

// Session is the key-derivation state of one unlock, shared by every
// derivation in it whatever the format and the function: a work budget that
// bounds what a hostile header can make it spend, and the keys already
// derived, so that each distinct (function, parameters, salt, secret) is
// derived once (a header whose keyslots, or whose two copies, repeat one salt
// costs one derivation, not one per slot). Derivations find it in their
// context (NewContext); Run is how a derivation function takes part. Close
// wipes the keys it kept. A Session is safe for concurrent use.
type Session struct {
	mu     sync.Mutex
	budget Work
	spent  Work
	runs   int
	memo   []memoEntry
}

type memoEntry struct {
	name   string
	salt   []byte
	secret *memguard.LockedBuffer // memguard refuses empty buffers: one byte for an empty secret
	length int                    // of the secret
	key    *memguard.LockedBuffer
}

// NewSession returns a session with the given budget (0 for DefaultBudget).
func NewSession(budget Work) *Session {
	if budget == 0 {
		budget = DefaultBudget
	}
	return &Session{budget: budget}
}

// Close wipes the keys the session kept.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.memo {
		e.secret.Destroy()
		e.key.Destroy()
	}
	s.memo = nil
}

// Budget is the session's budget.
func (s *Session) Budget() Work { return s.budget }

// Spent is the work of the derivations the session has run.
func (s *Session) Spent() Work {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spent
}

// Derivations is how many derivations the session has run (those served from
// its memory of derived keys not counted).
func (s *Session) Derivations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs
}

type sessionKey struct{}

// NewContext returns ctx carrying s: every Run (and so every Derive) under it
// takes part in s. A nil s detaches the context from any session.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// FromContext returns the Session ctx carries, or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// Job describes one derivation to Run.
type Job struct {
	// Name identifies the function and every parameter but the salt and
	// the secret, e.g. "argon2id m=1G t=4 p=4 n=32" or "pbkdf2-sha512
	// i=500000 n=64": two jobs with the same Name, Salt and Secret give
	// the same key.
	Name   string
	Salt   []byte
	Secret []byte
	// Work is what the derivation costs, charged to the budget before it
	// starts.
	Work Work
}

// Run runs derive, the derivation job describes, under the Session in ctx:
// a key the session derived already for the same job comes back as a fresh
// copy (owned by the caller), without work; otherwise the job's work is
// charged to the budget, and a job that does not fit fails with a
// *BudgetError before anything is done. A derivation that fails is not
// charged. Without a Session, Run only checks ctx and calls derive.
func Run(ctx context.Context, job Job, derive func(context.Context) (*memguard.LockedBuffer, error)) (*memguard.LockedBuffer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := FromContext(ctx)
	if s == nil {
		return derive(ctx)
	}
	if k := s.lookup(job); k != nil {
		return k, nil
	}
	if err := s.charge(job.Work); err != nil {
		return nil, err
	}
	k, err := derive(ctx)
	if err != nil {
		s.refund(job.Work)
		return nil, err
	}
	s.store(job, k)
	return k, nil
}

func (s *Session) lookup(job Job) *memguard.LockedBuffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.memo {
		if e.name == job.Name && bytes.Equal(e.salt, job.Salt) &&
			e.length == len(job.Secret) && subtle.ConstantTimeCompare(e.secret.Bytes()[:e.length], job.Secret) == 1 {
			k := memguard.NewBuffer(e.key.Size())
			copy(k.Bytes(), e.key.Bytes())
			return k
		}
	}
	return nil
}

func (s *Session) charge(w Work) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent+w > s.budget || s.spent+w < s.spent {
		return &BudgetError{Budget: s.budget, Spent: s.spent, Need: w}
	}
	s.spent += w
	s.runs++
	return nil
}

func (s *Session) refund(w Work) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spent -= w
	s.runs--
}

func (s *Session) store(job Job, k *memguard.LockedBuffer) {
	secret := memguard.NewBuffer(max(len(job.Secret), 1))
	copy(secret.Bytes(), job.Secret)
	key := memguard.NewBuffer(k.Size())
	copy(key.Bytes(), k.Bytes())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memo = append(s.memo, memoEntry{name: job.Name, salt: bytes.Clone(job.Salt), secret: secret, length: len(job.Secret), key: key})
}
