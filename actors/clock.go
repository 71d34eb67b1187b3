package actors

import "time"

// Clock is the runtime's source of time: restart backoff, the restart budget
// window and the shutdown timeout all read it, so tests can inject a fake one.
// Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real wall clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
