package pod

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCheck is a slog handler for tests: it records a problem for every
// record at info or above that repeats a key (its own or one given by
// With), carries a time.Duration (the pods log seconds), or has a message
// or value on more than one line; then passes the record on.
type logCheck struct {
	next  slog.Handler
	rec   *logProblems
	attrs []slog.Attr // from WithAttrs
	group string      // from WithGroup, as a key prefix
}

type logProblems struct {
	mu sync.Mutex
	ps []string
}

func (r *logProblems) add(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ps) < 20 {
		r.ps = append(r.ps, p)
	}
}

func (r *logProblems) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ps...)
}

func (h *logCheck) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logCheck) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), h.prefixed(as)...)
	return &c
}

func (h *logCheck) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

func (h *logCheck) prefixed(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: h.group + a.Key, Value: a.Value}
	}
	return out
}

func (h *logCheck) Handle(ctx context.Context, r slog.Record) error {
	all := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		all = append(all, h.prefixed([]slog.Attr{a})...)
		return true
	})
	if p := logProblem(r.Message, all); p != "" {
		h.rec.add(fmt.Sprintf("%q: %s", r.Message, p))
	}
	return h.next.Handle(ctx, r)
}

// logProblem returns what is wrong with a record of msg and attrs, or "".
func logProblem(msg string, attrs []slog.Attr) string {
	var ps []string
	if strings.ContainsAny(msg, "\n\r") {
		ps = append(ps, "a message on more than one line")
	}
	seen := map[string]bool{}
	for _, a := range attrs {
		if seen[a.Key] {
			ps = append(ps, "key "+a.Key+" twice")
		}
		seen[a.Key] = true
		v := a.Value.Resolve()
		switch v.Kind() {
		case slog.KindDuration:
			ps = append(ps, fmt.Sprintf("%s=%v, a duration (log seconds)", a.Key, v.Duration()))
		case slog.KindString:
			if strings.ContainsAny(v.String(), "\n\r") {
				ps = append(ps, a.Key+" on more than one line")
			}
		case slog.KindAny:
			if err, ok := v.Any().(error); ok && err != nil && strings.ContainsAny(err.Error(), "\n\r") {
				ps = append(ps, a.Key+" (an error) on more than one line")
			}
		}
	}
	return strings.Join(ps, "; ")
}

// TestLogCheckCatches: the check the in-process pod tests run on every
// log record finds each problem it is there for.
func TestLogCheckCatches(t *testing.T) {
	rec := &logProblems{}
	log := slog.New(&logCheck{next: slog.DiscardHandler, rec: rec}).With("node_id", "a", "component", "cluster")
	log.Info("fine", "took_seconds", 0.5, "err", error(nil))
	log.Debug("below info", "took", time.Second)
	log.Info("repeat", "component", "memberlist")
	log.Info("duration", "took", 35*time.Millisecond)
	log.Info("multi", "err", fmt.Errorf("2 errors occurred:\n\t* a\n\t* b"))
	log.Info("two\nlines")
	log.WithGroup("g").Info("grouped", "node_id", "b")
	got := strings.Join(rec.list(), "\n")
	for _, want := range []string{`"repeat": key component twice`, `"duration": took=35ms, a duration`, `"multi": err (an error) on more than one line`, `"two\nlines": a message on more than one line`} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if n := len(rec.list()); n != 4 {
		t.Errorf("%d problems, want 4:\n%s", n, got)
	}
}
