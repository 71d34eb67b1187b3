package actors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// vclock is a virtual clock for driving the breaker.
type vclock struct{ t time.Time }

func (c *vclock) now() time.Time          { return c.t }
func (c *vclock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newVClock() *vclock                  { return &vclock{t: time.Unix(1_700_000_000, 0)} }
func mustBreaker(t *testing.T, e uint64) *Breaker {
	t.Helper()
	b, err := NewBreaker(DefaultBreakerConfig(), e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantState(t *testing.T, b *Breaker, s BreakerState) {
	t.Helper()
	if b.State() != s {
		t.Fatalf("state %v, want %v", b.State(), s)
	}
}

func TestBreakerConfigValidation(t *testing.T) {
	bad := []BreakerConfig{
		{FailureThreshold: 0, FailureWindow: time.Second, BackPressureDeadline: time.Second},
		{FailureThreshold: 1, FailureWindow: -1, BackPressureDeadline: time.Second},
		{FailureThreshold: 1, FailureWindow: time.Second, BackPressureDeadline: 0},
	}
	for _, c := range bad {
		if _, err := NewBreaker(c, 0); !errors.Is(err, ErrBreakerConfig) {
			t.Errorf("config %+v: err %v, want ErrBreakerConfig", c, err)
		}
	}
}

func TestBreakerStartsHalfOpenAndLearnsFromFirstAck(t *testing.T) {
	c := newVClock()
	b := mustBreaker(t, 1)
	wantState(t, b, BreakerHalfOpen)
	if b.CanOffer() {
		t.Fatal("a half-open breaker must not offer before it knows the committed position")
	}
	// Failed offers while half-open are not counted (nothing was offered).
	if b.Failed(c.now(), FailNotConnected) {
		t.Fatal("failure counted while half-open")
	}
	acc, rew := b.Heard(c.now(), 1, 41, false)
	if !acc || rew {
		t.Fatalf("Heard = %v,%v", acc, rew)
	}
	wantState(t, b, BreakerDraining)
	if b.Next() != 42 {
		t.Fatalf("next %d, want 42", b.Next())
	}
	// Drain the stash 42..100 in two offers; the live end is 100.
	if b.Offered(c.now(), 70, 100) {
		t.Fatal("closed before the stash was drained")
	}
	wantState(t, b, BreakerDraining)
	if !b.Offered(c.now(), 100, 100) {
		t.Fatal("did not close after the stash was drained")
	}
	wantState(t, b, BreakerClosed)
	if b.Next() != 101 {
		t.Fatalf("next %d, want 101", b.Next())
	}
}

func TestBreakerEmptyStashClosesOnCaughtUp(t *testing.T) {
	c := newVClock()
	b := mustBreaker(t, 0)
	b.Heard(c.now(), 3, 0, false)
	wantState(t, b, BreakerDraining)
	if b.Epoch() != 3 {
		t.Fatalf("epoch %d", b.Epoch())
	}
	// Outbox empty: live end 0 < next 1.
	if !b.CaughtUp(c.now(), 0) {
		t.Fatal("not closed")
	}
	wantState(t, b, BreakerClosed)
}

func closedBreaker(t *testing.T, c *vclock, next uint64) *Breaker {
	t.Helper()
	b := mustBreaker(t, 1)
	b.Heard(c.now(), 1, next-1, false)
	b.CaughtUp(c.now(), next-1)
	wantState(t, b, BreakerClosed)
	return b
}

func TestBreakerOpensAfterNotConnectedThresholdAndWindow(t *testing.T) {
	c := newVClock()
	b := closedBreaker(t, c, 10)
	// Many failures in a short time: below the window, stays closed.
	for range 10 {
		if b.Failed(c.now(), FailNotConnected) {
			t.Fatal("opened before the failure window elapsed")
		}
		c.advance(100 * time.Millisecond)
	}
	// A success resets the count.
	b.Offered(c.now(), 12, 12)
	c.advance(3 * time.Second)
	b.Failed(c.now(), FailNotConnected)
	c.advance(3 * time.Second)
	if b.Failed(c.now(), FailNotConnected) {
		t.Fatal("opened below the threshold count")
	}
	c.advance(time.Millisecond)
	if !b.Failed(c.now(), FailNotConnected) {
		t.Fatal("did not open at threshold after the window")
	}
	wantState(t, b, BreakerOpen)
	if b.CanOffer() || b.Opens() != 1 || b.Reason() == "" {
		t.Fatalf("open breaker: canOffer %v opens %d reason %q", b.CanOffer(), b.Opens(), b.Reason())
	}
}

func TestBreakerOpensOnBackPressureBeyondDeadline(t *testing.T) {
	c := newVClock()
	b := closedBreaker(t, c, 1)
	for range 4 {
		b.Failed(c.now(), FailBackPressured)
		c.advance(time.Second)
	}
	// A success 4 s in: the deadline (5 s) restarts.
	b.Offered(c.now(), 5, 5)
	b.Failed(c.now(), FailBackPressured)
	for range 4 {
		c.advance(time.Second)
		if b.Failed(c.now(), FailBackPressured) {
			t.Fatal("opened before the deadline")
		}
	}
	c.advance(time.Second)
	if !b.Failed(c.now(), FailBackPressured) {
		t.Fatal("did not open after the back-pressure deadline")
	}
	wantState(t, b, BreakerOpen)
}

func TestBreakerMembershipDeadThenNewEpochWithReplay(t *testing.T) {
	c := newVClock()
	b := closedBreaker(t, c, 1)
	// Offer 1..500 live.
	b.Offered(c.now(), 500, 500)
	wantState(t, b, BreakerClosed)
	if !b.MemberDead(c.now(), 1) {
		t.Fatal("membership dead did not open")
	}
	wantState(t, b, BreakerOpen)
	// Heard from the dead epoch's zombie: fenced once a newer epoch is known.
	// A replacement (epoch 2) is announced by membership.
	if !b.MemberAlive(c.now(), 2) {
		t.Fatal("alive with a new epoch did not half-open")
	}
	wantState(t, b, BreakerHalfOpen)
	if b.CanOffer() {
		t.Fatal("half-open offers before learning")
	}
	// A late ack from epoch 1 is stale.
	if acc, _ := b.Heard(c.now(), 1, 450, false); acc {
		t.Fatal("stale epoch accepted")
	}
	wantState(t, b, BreakerHalfOpen)
	// The replacement restored a snapshot committed at 300: replay from 301.
	acc, rew := b.Heard(c.now(), 2, 300, true)
	if !acc || !rew || b.Next() != 301 || b.Replays() != 1 {
		t.Fatalf("Heard=%v,%v next=%d replays=%d", acc, rew, b.Next(), b.Replays())
	}
	wantState(t, b, BreakerDraining)
	// Live traffic appended meanwhile (live end 800): drained in order first.
	b.Offered(c.now(), 600, 800)
	wantState(t, b, BreakerDraining)
	b.Offered(c.now(), 800, 800)
	wantState(t, b, BreakerClosed)
}

func TestBreakerNewEpochHeardWhileClosedRewinds(t *testing.T) {
	// The replacement came back before membership declared the old one dead.
	c := newVClock()
	b := closedBreaker(t, c, 1)
	b.Offered(c.now(), 100, 100)
	acc, rew := b.Heard(c.now(), 2, 60, false)
	if !acc || !rew || b.Next() != 61 {
		t.Fatalf("Heard=%v,%v next=%d", acc, rew, b.Next())
	}
	wantState(t, b, BreakerDraining)
	// Membership's later news about the old epoch changes nothing.
	if b.MemberDead(c.now(), 1) {
		t.Fatal("dead report for an old epoch opened the breaker")
	}
	if b.MemberAlive(c.now(), 2) {
		t.Fatal("alive report for the current epoch changed a draining breaker")
	}
}

func TestBreakerSameEpochAckDoesNotRewindButHelloDoes(t *testing.T) {
	c := newVClock()
	b := closedBreaker(t, c, 1)
	b.Offered(c.now(), 100, 100)
	// A lagging ack (durable snapshot behind the stream) must not replay.
	if _, rew := b.Heard(c.now(), 1, 40, false); rew || b.Next() != 101 {
		t.Fatalf("ack rewound: next %d", b.Next())
	}
	wantState(t, b, BreakerClosed)
	// A hello (the consumer saw a gap) asks for a replay.
	if _, rew := b.Heard(c.now(), 1, 70, true); !rew || b.Next() != 71 {
		t.Fatalf("hello did not rewind: next %d", b.Next())
	}
	wantState(t, b, BreakerDraining)
	// An ack ahead of the cursor moves it forward.
	b.Heard(c.now(), 1, 90, false)
	if b.Next() != 91 {
		t.Fatalf("next %d, want 91", b.Next())
	}
}

func TestBreakerOpenHeardGoesDraining(t *testing.T) {
	c := newVClock()
	b := closedBreaker(t, c, 1)
	b.Offered(c.now(), 10, 10)
	for range 3 {
		b.Failed(c.now(), FailNotConnected)
		c.advance(time.Second)
	}
	wantState(t, b, BreakerOpen)
	if b.Failed(c.now(), FailNotConnected) || b.MemberDead(c.now(), 1) {
		t.Fatal("an open breaker reopened")
	}
	// Same epoch comes back (alive again): half-open, then an ack teaches.
	if !b.MemberAlive(c.now(), 1) {
		t.Fatal("same-epoch alive did not half-open an open breaker")
	}
	wantState(t, b, BreakerHalfOpen)
	b.MemberDead(c.now(), 1)
	wantState(t, b, BreakerOpen)
	// Or an ack arrives while open: the consumer is alive, drain from it.
	acc, rew := b.Heard(c.now(), 1, 7, false)
	if !acc || !rew || b.Next() != 8 {
		t.Fatalf("Heard=%v,%v next=%d", acc, rew, b.Next())
	}
	wantState(t, b, BreakerDraining)
}

// TestBreakerModel drives a publisher loop (outbox + breaker) against a
// consumer that crashes, restarts with new epochs from its durable position,
// stalls and loses packets, all from a seed, and checks the consumer's applied
// sequence is exactly 1..N in order: nothing lost, nothing applied twice.
func TestBreakerModel(t *testing.T) {
	var opens, replays uint64
	for seed := uint64(1); seed <= 200; seed++ {
		o, r, err := runBreakerModel(seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		opens, replays = opens+o, replays+r
	}
	// The model must actually exercise the breaker.
	if opens < 100 || replays < 100 {
		t.Fatalf("model too gentle: %d opens, %d replays over 200 seeds", opens, replays)
	}
	t.Logf("%d opens, %d replays over 200 seeds", opens, replays)
}

func runBreakerModel(seed uint64) (opens, replays uint64, err error) {
	rng := rand.New(rand.NewPCG(seed, 99))
	c := newVClock()
	const n = 2000
	var (
		generated uint64 // last seq in the outbox
		released  uint64 // outbox holds released+1..generated
		epoch     uint64 = 1
		up               = true
		applied   uint64 // consumer's watermark (in memory)
		durable   uint64 // consumer's durable committed (survives crashes)
		acked     uint64 // what the publisher learned from acks
	)
	b, err := NewBreaker(DefaultBreakerConfig(), 0)
	if err != nil {
		return 0, 0, err
	}
	b.MemberAlive(c.now(), epoch)
	heardUp := false
	for step := 0; step < 200000 && (applied < n || !up); step++ {
		c.advance(time.Duration(rng.IntN(300)) * time.Millisecond)
		// Generate if the outbox has room (bounded at 256).
		if generated < n && generated-released < 256 {
			generated += uint64(1 + rng.IntN(8))
			if generated > n {
				generated = n
			}
		}
		switch r := rng.IntN(100); {
		case r < 2 && up: // crash
			up, heardUp = false, false
			applied = durable
			if rng.IntN(2) == 0 { // membership noticed; else only the transport tells
				b.MemberDead(c.now(), epoch)
			}
		case r < 6 && !up: // replacement with a new epoch
			up = true
			epoch++
			b.MemberAlive(c.now(), epoch)
		case r < 20 && up: // durable snapshot + ack (or the first hello)
			durable = applied
			if acc, _ := b.Heard(c.now(), epoch, durable, !heardUp); acc {
				heardUp = true
			}
			if durable > acked {
				acked = durable
			}
			if acked > released {
				released = acked
			}
		}
		if !b.CanOffer() {
			continue
		}
		if b.Next() <= released {
			return 0, 0, errorf("cursor %d inside released range ..%d", b.Next(), released)
		}
		if b.Next() > generated {
			b.CaughtUp(c.now(), generated)
			continue
		}
		through := min(generated, b.Next()+uint64(rng.IntN(16)))
		switch {
		case !up:
			b.Failed(c.now(), FailNotConnected)
		case rng.IntN(10) == 0:
			b.Failed(c.now(), FailBackPressured)
		default:
			// Delivered: the consumer dedups below its watermark and must
			// never see a gap.
			first := b.Next()
			if first > applied+1 {
				return 0, 0, errorf("gap: consumer at %d got %d..%d", applied, first, through)
			}
			if through > applied {
				applied = through
			}
			b.Offered(c.now(), through, generated)
		}
	}
	if applied != n {
		return 0, 0, errorf("consumer ended at %d of %d (state %v)", applied, n, b.State())
	}
	return b.Opens(), b.Replays(), nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// ExampleBreaker walks a breaker through a subscriber's replacement: the
// publisher stops offering when membership reports it dead, keeps stashing
// (its outbox grows), half-opens when the new incarnation appears, learns
// the committed position from its hello, drains the stash, and closes.
func ExampleBreaker() {
	now := time.Unix(0, 0)
	b, _ := NewBreaker(DefaultBreakerConfig(), 1)
	b.Heard(now, 1, 0, true)  // first hello: nothing committed yet
	b.Offered(now, 100, 100)  // live: 1..100 offered, caught up
	fmt.Println(b.State())    // closed
	b.MemberDead(now, 1)      // the subscriber was killed
	fmt.Println(b.State())    // open: the outbox keeps 101..
	b.MemberAlive(now, 2)     // its replacement joined
	fmt.Println(b.State())    // half-open: position unknown
	b.Heard(now, 2, 80, true) // restored a snapshot committed at 80
	fmt.Println(b.State(), b.Next())
	b.Offered(now, 250, 250) // replayed 81..250 in order
	fmt.Println(b.State())
	// Output:
	// closed
	// open
	// half-open
	// draining 81
	// closed
}
