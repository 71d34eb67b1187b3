package transport

import "time"

// errPacer paces a loop whose socket reads keep failing with an error that
// is neither a timeout nor a closed socket (ENOMEM, a revoked descriptor,
// an ICMP error surfacing on a read): each error is counted in
// DriverStats.SocketErrors, the loop sleeps 1 ms doubling to 100 ms, and
// errors are logged at most once a second per loop with how many there
// were. Owned by one loop.
type errPacer struct {
	where    string
	delay    time.Duration
	lastLog  time.Time
	unlogged uint64
}

const (
	minErrBackoff = time.Millisecond
	maxErrBackoff = 100 * time.Millisecond
	errLogEvery   = time.Second
)

// fail records err and sleeps; it reports false when stop closed first.
func (e *errPacer) fail(d *Driver, err error, stop <-chan struct{}) bool {
	d.socketErrors.Add(1)
	e.unlogged++
	if now := time.Now(); now.Sub(e.lastLog) >= errLogEvery {
		d.logger.Warn("transport: socket error", "where", e.where, "err", err, "errors", e.unlogged)
		e.lastLog, e.unlogged = now, 0
	}
	e.delay = min(max(2*e.delay, minErrBackoff), maxErrBackoff)
	t := time.NewTimer(e.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

// ok resets the back-off after a successful read.
func (e *errPacer) ok() { e.delay = 0 }
