package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestMemberlistErrorsRateLimited: 100k junk datagrams made 100k ERROR
// lines (8.4 MB, issue 14 §7). Now one line per kind per logEvery, the
// next one carrying the count of those suppressed.
func TestMemberlistErrorsRateLimited(t *testing.T) {
	var out bytes.Buffer
	lim := newLimiter()
	now := time.Unix(1000, 0)
	lim.now = func() time.Time { return now }
	w := slogWriter{log: slog.New(slog.NewJSONHandler(&out, nil)), lim: lim}
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(w, "2026/01/01 00:00:00 [ERR] memberlist: Failed to decode ping request: boom from=127.0.0.1:%d\n", 1000+i%5000)
	}
	fmt.Fprintf(w, "[WARN] memberlist: Got ping for unexpected node 'x' from=127.0.0.1:1\n")
	fmt.Fprintf(w, "[INFO] memberlist: Suspect x has failed, no acks received\n")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (one per kind, info not limited):\n%s", len(lines), out.String())
	}
	now = now.Add(logEvery)
	fmt.Fprintf(w, "[ERR] memberlist: Failed to decode ping request: again from=127.0.0.1:9\n")
	last := out.String()[strings.LastIndex(strings.TrimSpace(out.String()), "\n")+1:]
	if !strings.Contains(last, `"suppressed":19999`) || !strings.Contains(last, `"level":"ERROR"`) {
		t.Fatalf("next line = %s, want the suppressed count", last)
	}
}

func TestLimiterBoundsKinds(t *testing.T) {
	lim := newLimiter()
	for i := 0; i < 10*maxLogKinds; i++ {
		lim.allow(fmt.Sprint("kind-", i))
	}
	if len(lim.kinds) > maxLogKinds+1 {
		t.Fatalf("%d kinds tracked, want at most %d", len(lim.kinds), maxLogKinds+1)
	}
}

// TestMemberlistLinesRepeatNoKey: memberlist's lines went out with
// component=memberlist on a logger that already had component=cluster
// (the pod's), a key twice in one record. They now carry the logger's
// attributes only, and every message says where it comes from.
func TestMemberlistLinesRepeatNoKey(t *testing.T) {
	var out bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&out, nil)).With("node_id", "n1", "component", "cluster")
	w := slogWriter{log: lg, lim: newLimiter()}
	fmt.Fprintf(w, "2026/01/01 00:00:00 [ERR] memberlist: Failed to send gossip to 127.0.0.1:1: closed\n")
	fmt.Fprintf(w, "[ERR] Failed to shutdown transport: boom\n")
	fmt.Fprintf(w, "[INFO] memberlist: Suspect x has failed, no acks received\n")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		if n := strings.Count(l, `"component":`); n != 1 {
			t.Errorf("component %d times in %s", n, l)
		}
		if !strings.Contains(l, `"component":"cluster"`) || !strings.Contains(l, `"msg":"memberlist: `) {
			t.Errorf("line %s: want component cluster and a memberlist: message", l)
		}
	}
}

// TestClosedSocketErrorsAfterClose: memberlist's gossip goroutine outlives
// its transport and logged an ERROR ("Failed to send gossip ...: use of
// closed network connection") after every clean stop. Once the cluster is
// closing that is a debug line; before, it stays an error.
func TestClosedSocketErrorsAfterClose(t *testing.T) {
	var out bytes.Buffer
	done := make(chan struct{})
	w := slogWriter{log: slog.New(slog.NewJSONHandler(&out, nil)), lim: newLimiter(), done: done}
	line := "[ERR] memberlist: Failed to send gossip to 127.0.0.1:7946: write udp 127.0.0.1:7947->127.0.0.1:7946: use of closed network connection\n"
	fmt.Fprint(w, line)
	if !strings.Contains(out.String(), `"level":"ERROR"`) {
		t.Fatalf("before close: %q, want an error", out.String())
	}
	out.Reset()
	close(done)
	fmt.Fprint(w, strings.Replace(line, "Failed to send gossip", "Failed to send ping", 1))
	fmt.Fprint(w, "[ERR] memberlist: Failed fallback TCP ping: EOF\n")
	if got := out.String(); strings.Contains(got, "closed network") || !strings.Contains(got, "fallback TCP ping") {
		t.Fatalf("after close: %q, want only the other error", got)
	}
}
