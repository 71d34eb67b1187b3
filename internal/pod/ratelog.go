package pod

import (
	"sync"
	"time"
)

// logLimiter lets at most one log line per key through every interval and
// counts the lines it holds back; the next line let through reports that
// count, so a flood (e.g. forged datagrams) costs a line per interval, not
// a line per datagram, and nothing goes uncounted. Keys are a fixed small
// set (reasons), never attacker-chosen strings. Safe for concurrent use.
type logLimiter struct {
	every time.Duration

	mu   sync.Mutex // guards keys
	keys map[string]*limitState
}

type limitState struct {
	last       time.Time
	suppressed uint64
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, keys: map[string]*limitState{}}
}

// allow reports whether a line for key may be logged at now and, if so,
// how many lines for key were held back since the last one let through.
func (l *logLimiter) allow(key string, now time.Time) (suppressed uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		st = &limitState{}
		l.keys[key] = st
	} else if now.Sub(st.last) < l.every {
		st.suppressed++
		return 0, false
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return n, true
}
