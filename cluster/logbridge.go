package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is how often one kind of repeated log line (a dropped message,
// a rejected push, a memberlist error) is written at most; the lines
// suppressed in between are counted in the next one ("suppressed").
const logEvery = 10 * time.Second

// maxLogKinds bounds the kinds a limiter tracks; kinds beyond it share one.
const maxLogKinds = 128

// limiter rate-limits log lines per kind. Kinds are fixed strings or
// derived from memberlist's message text, never from a peer's bytes alone.
type limiter struct {
	now func() time.Time

	mu    sync.Mutex
	kinds map[string]*logKind // guarded by mu
}

type logKind struct {
	last       time.Time
	suppressed uint64
}

func newLimiter() *limiter {
	return &limiter{now: time.Now, kinds: make(map[string]*logKind)}
}

// allow reports whether a line of kind may be written now, and how many
// were suppressed since the last one written.
func (l *limiter) allow(kind string) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) >= maxLogKinds {
			kind = "other"
			if k = l.kinds[kind]; k == nil {
				k = &logKind{}
				l.kinds[kind] = k
			}
		} else {
			k = &logKind{}
			l.kinds[kind] = k
		}
	}
	now := l.now()
	if !k.last.IsZero() && now.Sub(k.last) < logEvery {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// logLimited writes a warning of kind at most once per logEvery, with the
// count of the lines suppressed before it.
func (c *Cluster) logLimited(kind, msg string, args ...any) {
	ok, n := c.lim.allow(kind)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	c.log.Warn(msg, args...)
}

// slogWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at the matching level. memberlist writes one line per call.
// Warnings and errors are rate-limited per kind (the first words of the
// message): 100k junk datagrams make a few lines with counts, not 100k.
// The lines carry the cluster logger's attributes (component=cluster from
// the pod) and no component of their own, which would repeat that key;
// the message says "memberlist: ...".
//
// Once the cluster is closing (done closed), memberlist's errors about its
// own closed sockets ("use of closed network connection": its gossip
// goroutine still runs after its transport shut down) are debug lines,
// not an ERROR at every clean stop.
type slogWriter struct {
	log  *slog.Logger
	lim  *limiter
	done <-chan struct{} // the cluster's; nil: never closing
}

var closedConn = []byte("use of closed network connection")

func (w slogWriter) closing() bool {
	if w.done == nil {
		return false
	}
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}} {
		if i := bytes.Index(line, []byte(l.tag)); i >= 0 {
			level = l.level
			line = bytes.TrimSpace(line[i+len(l.tag):])
			break
		}
	}
	if level >= slog.LevelWarn && bytes.Contains(line, closedConn) && w.closing() {
		level = slog.LevelDebug
	}
	if !w.log.Enabled(context.Background(), level) {
		return len(p), nil
	}
	if !bytes.HasPrefix(line, []byte("memberlist: ")) { // a few of its lines lack it
		line = append([]byte("memberlist: "), line...)
	}
	var args []any
	if level >= slog.LevelWarn && w.lim != nil {
		ok, n := w.lim.allow("memberlist " + logKindOf(line))
		if !ok {
			return len(p), nil
		}
		if n > 0 {
			args = append(args, "suppressed", n)
		}
	}
	w.log.Log(context.Background(), level, string(line), args...)
	return len(p), nil
}

// logKindOf returns the first four words of a memberlist message, cut
// before the first digit or ':' so that addresses and counts do not make
// every line a kind of its own.
func logKindOf(line []byte) string {
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	words, end := 0, 0
	for i, b := range line {
		if b == ':' || b >= '0' && b <= '9' || b == '=' {
			break
		}
		if b == ' ' {
			words++
			if words == 4 {
				break
			}
		}
		end = i + 1
	}
	return string(line[:end])
}
