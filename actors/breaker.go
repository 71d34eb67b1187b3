package actors

import (
	"errors"
	"fmt"
	"time"
)

// Circuit breaker: a publisher's view of one remote consumer (a subscriber),
// written as a pure state machine. It takes time and events as inputs and
// never touches a socket, a clock or a goroutine, so tests drive it with a
// virtual clock and the publisher runs the same code on real sockets.
//
// The breaker owns the consumer's send cursor (Next: the sequence number of the
// next value to offer). Everything not yet acknowledged stays in the
// publisher's outbox (the "stash"), so "stash while open, drain in order
// before live traffic" reduces to: stop offering while open, and on recovery
// move the cursor back to the consumer's committed position and offer from the
// outbox, in order, until the cursor reaches the live end.
//
//	          failures ≥ threshold for ≥ window,
//	          back-pressure beyond deadline, member dead
//	 Closed ─────────────────────────────────────────▶ Open
//	   ▲  ▲                                              │ member alive again
//	   │  │ cursor reached the live end                  │ (same or new epoch)
//	   │  │                                              ▼
//	   │  Draining ◀───── first ack/hello (learn) ─── HalfOpen
//	   │     ▲                                            ▲
//	   │     └── heard from a new epoch ──────────────────┘── (new epoch seen
//	   └── (Draining is Closed that is still catching up)        by membership)
//
// A message heard from the consumer (ack or hello) while Open also proves it
// alive, so it moves the breaker straight to Draining. Messages from a lower
// epoch than the breaker's are stale and ignored (fencing).

// BreakerState is the state of a Breaker. The numeric values are exported as
// a metric (steadfast_breaker_state): append only.
type BreakerState uint8

const (
	// BreakerClosed: the consumer is live and caught up; offers go out as
	// values are appended to the outbox.
	BreakerClosed BreakerState = 0
	// BreakerOpen: the consumer is considered down; nothing is offered and
	// the outbox keeps everything.
	BreakerOpen BreakerState = 1
	// BreakerHalfOpen: the consumer is alive again but its committed
	// position is unknown; nothing is offered until it is learned.
	BreakerHalfOpen BreakerState = 2
	// BreakerDraining: the committed position is known; the stash is being
	// replayed in order. Becomes Closed when the cursor reaches the live end.
	BreakerDraining BreakerState = 3
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerDraining:
		return "draining"
	}
	return fmt.Sprintf("breaker-state(%d)", uint8(s))
}

// OfferFailure classifies a failed offer.
type OfferFailure uint8

const (
	// FailNotConnected: the transport has no connected consumer.
	FailNotConnected OfferFailure = 1
	// FailBackPressured: the consumer is connected but not keeping up.
	FailBackPressured OfferFailure = 2
)

// ErrBreakerConfig is wrapped by BreakerConfig validation errors.
var ErrBreakerConfig = errors.New("actors: invalid breaker config")

// BreakerConfig tunes when a breaker opens.
type BreakerConfig struct {
	// FailureThreshold is the number of consecutive not-connected offers
	// that opens the breaker, provided they also span FailureWindow.
	// Default 3.
	FailureThreshold int
	// FailureWindow is the minimum time the consecutive not-connected
	// failures must span: a fresh transport connection is briefly not
	// connected, which must not open the breaker. Default 2 s.
	FailureWindow time.Duration
	// BackPressureDeadline opens the breaker when offers have been
	// back-pressured without a single success for this long. Default 5 s.
	BackPressureDeadline time.Duration
}

// DefaultBreakerConfig returns the defaults described on BreakerConfig.
func DefaultBreakerConfig() BreakerConfig {
	return BreakerConfig{FailureThreshold: 3, FailureWindow: 2 * time.Second, BackPressureDeadline: 5 * time.Second}
}

func (c BreakerConfig) validate() error {
	switch {
	case c.FailureThreshold < 1:
		return fmt.Errorf("%w: failure threshold %d must be >= 1", ErrBreakerConfig, c.FailureThreshold)
	case c.FailureWindow < 0:
		return fmt.Errorf("%w: failure window %v must be >= 0", ErrBreakerConfig, c.FailureWindow)
	case c.BackPressureDeadline <= 0:
		return fmt.Errorf("%w: back-pressure deadline %v must be > 0", ErrBreakerConfig, c.BackPressureDeadline)
	}
	return nil
}

// Breaker is the circuit breaker for one consumer. It is not safe for
// concurrent use: the publishing actor owns it.
type Breaker struct {
	cfg   BreakerConfig
	state BreakerState
	epoch uint64 // highest consumer epoch seen
	next  uint64 // next seq to offer (valid in Draining and Closed)

	failures     int       // consecutive not-connected offers
	failingSince time.Time // first of those failures
	pressedSince time.Time // first back-pressured offer since the last success (zero: none)

	opens    uint64 // times the breaker opened
	replays  uint64 // times the cursor moved backwards (replays started)
	lastWhy  string // why it last opened
	changeAt time.Time
}

// NewBreaker returns a breaker in HalfOpen: a consumer's committed position is
// unknown until it is heard from, so nothing is offered before its first ack
// or hello. epoch is the consumer epoch known at creation (0 if unknown).
func NewBreaker(cfg BreakerConfig, epoch uint64) (*Breaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Breaker{cfg: cfg, state: BreakerHalfOpen, epoch: epoch}, nil
}

// State returns the current state.
func (b *Breaker) State() BreakerState { return b.state }

// Epoch returns the highest consumer epoch the breaker has seen.
func (b *Breaker) Epoch() uint64 { return b.epoch }

// Opens returns how many times the breaker has opened.
func (b *Breaker) Opens() uint64 { return b.opens }

// Replays returns how many times the cursor moved back to replay the stash.
func (b *Breaker) Replays() uint64 { return b.replays }

// Reason returns why the breaker last opened ("" if it never did).
func (b *Breaker) Reason() string { return b.lastWhy }

// CanOffer reports whether values may be offered now (Closed or Draining).
func (b *Breaker) CanOffer() bool {
	return b.state == BreakerClosed || b.state == BreakerDraining
}

// Next returns the sequence number of the next value to offer. It is
// meaningful only when CanOffer is true.
func (b *Breaker) Next() uint64 { return b.next }

// Offered records a successful offer of values up to and including through.
// liveEnd is the last seq in the outbox: when the cursor passes it, a draining
// breaker closes. It returns true if the state changed.
func (b *Breaker) Offered(now time.Time, through, liveEnd uint64) bool {
	if !b.CanOffer() {
		return false
	}
	b.failures, b.failingSince, b.pressedSince = 0, time.Time{}, time.Time{}
	if through+1 > b.next {
		b.next = through + 1
	}
	return b.CaughtUp(now, liveEnd)
}

// CaughtUp tells a draining breaker the outbox's live end; if the cursor is
// beyond it, the stash is drained and the breaker closes. Returns true if the
// state changed.
func (b *Breaker) CaughtUp(now time.Time, liveEnd uint64) bool {
	if b.state == BreakerDraining && b.next > liveEnd {
		b.set(now, BreakerClosed)
		return true
	}
	return false
}

// Failed records a failed offer. It returns true if the breaker opened.
func (b *Breaker) Failed(now time.Time, why OfferFailure) bool {
	if !b.CanOffer() {
		return false
	}
	switch why {
	case FailNotConnected:
		if b.failures == 0 {
			b.failingSince = now
		}
		b.failures++
		if b.failures >= b.cfg.FailureThreshold && now.Sub(b.failingSince) >= b.cfg.FailureWindow {
			b.open(now, fmt.Sprintf("not connected %d times over %v", b.failures, now.Sub(b.failingSince)))
			return true
		}
	case FailBackPressured:
		b.failures, b.failingSince = 0, time.Time{}
		if b.pressedSince.IsZero() {
			b.pressedSince = now
		}
		if d := now.Sub(b.pressedSince); d >= b.cfg.BackPressureDeadline {
			b.open(now, fmt.Sprintf("back-pressured for %v", d))
			return true
		}
	}
	return false
}

// MemberDead records that membership declared the consumer dead (or gone) at
// epoch. A report about an older epoch than the breaker knows is ignored (the
// newer incarnation may already be alive). Returns true if the breaker opened.
func (b *Breaker) MemberDead(now time.Time, epoch uint64) bool {
	if epoch < b.epoch || b.state == BreakerOpen {
		return false
	}
	b.epoch = epoch
	b.open(now, fmt.Sprintf("membership: epoch %d dead", epoch))
	return true
}

// MemberAlive records that membership lists the consumer alive at epoch. A
// new epoch (a restarted or replaced consumer, perhaps at a new address)
// always half-opens the breaker: its committed position must be learned
// again. The same epoch half-opens an open breaker. Returns true if the state
// changed.
func (b *Breaker) MemberAlive(now time.Time, epoch uint64) bool {
	switch {
	case epoch < b.epoch:
		return false
	case epoch > b.epoch:
		b.epoch = epoch
		b.resetFailures()
		b.set(now, BreakerHalfOpen)
		return true
	case b.state == BreakerOpen:
		b.resetFailures()
		b.set(now, BreakerHalfOpen)
		return true
	}
	return false
}

// Heard records a message from the consumer carrying its resume point: the
// consumer has everything up to and including committed. replay says the
// consumer asks for a replay from committed+1 (a hello); an ack (replay
// false) only teaches the position when it is unknown or behind.
//
// It returns whether the message was accepted (false: a stale epoch, fenced)
// and whether the cursor moved backwards (a replay starts).
func (b *Breaker) Heard(now time.Time, epoch, committed uint64, replay bool) (accepted, rewound bool) {
	if epoch < b.epoch {
		return false, false
	}
	resume := committed + 1
	if epoch > b.epoch || b.state == BreakerOpen || b.state == BreakerHalfOpen {
		// A new incarnation, or the first word from a consumer we were not
		// offering to: learn its position and drain the stash from there.
		b.epoch = epoch
		b.resetFailures()
		rewound = resume < b.next
		b.next = resume
		if rewound {
			b.replays++
		}
		b.set(now, BreakerDraining)
		return true, rewound
	}
	// Closed or Draining, same epoch.
	switch {
	case replay && resume < b.next:
		b.next = resume
		b.replays++
		b.set(now, BreakerDraining)
		return true, true
	case resume > b.next:
		// The consumer already has more than we were about to send.
		b.next = resume
	}
	return true, false
}

func (b *Breaker) open(now time.Time, why string) {
	b.opens++
	b.lastWhy = why
	b.resetFailures()
	b.set(now, BreakerOpen)
}

func (b *Breaker) resetFailures() {
	b.failures, b.failingSince, b.pressedSince = 0, time.Time{}, time.Time{}
}

func (b *Breaker) set(now time.Time, s BreakerState) {
	if b.state != s {
		b.state = s
		b.changeAt = now
	}
}

// Since returns when the breaker entered its current state (zero if it never
// changed state).
func (b *Breaker) Since() time.Time { return b.changeAt }
