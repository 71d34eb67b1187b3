package transport

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// countingHandler counts log records whose message contains sub.
type countingHandler struct {
	mu  sync.Mutex
	sub string
	n   int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.sub) {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count() int                         { h.mu.Lock(); defer h.mu.Unlock(); return h.n }

// breakSocket replaces the socket's file descriptor with a pipe's read
// end, so every read fails with ENOTSOCK: a persistent error that is
// neither a timeout nor a closed socket.
func breakSocket(t *testing.T, u *udpConn) {
	t.Helper()
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	rc, err := u.c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var derr error
	if err := rc.Control(func(fd uintptr) { derr = syscall.Dup3(p[0], int(fd), 0) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	u.setReadDeadline(time.Now()) // wake a blocked reader
}

// TestSocketErrorsBackOff: a socket that keeps failing makes neither the
// endpoint loop nor a publication's control loop spin: the errors are
// counted, logged at most about once a second per loop, the loops back
// off, and the driver still closes promptly.
func TestSocketErrorsBackOff(t *testing.T) {
	checkNoLeak(t)
	h := &countingHandler{sub: "socket error"}
	cfg := testConfig()
	cfg.Logger = slog.New(h)
	d := newTestDriver(t, cfg)
	c := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0", 5)
	pub, err := d.AddPublication("aeron:udp?endpoint="+c.sub.LocalAddr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	offerAll(t, pub, "before")
	eventually(t, 10*time.Second, "delivery", func() bool { return c.count() == 1 })
	d.mu.Lock()
	breakSocket(t, c.sub.media.(*udpSubscription).ep.conn)
	d.mu.Unlock()
	breakSocket(t, pub.media.(*udpPublication).conn)
	time.Sleep(time.Second)
	st := d.Stats()
	// The sender's heartbeats and the endpoint's SMs fail too.
	eventually(t, 5*time.Second, "send errors", func() bool { return d.Stats().SendErrors > 0 })
	if st.SocketErrors == 0 {
		t.Fatal("socket errors not counted")
	}
	// Back-off from 1 ms doubling to 100 ms: ~15 errors per loop in 1 s.
	if st.SocketErrors > 100 {
		t.Fatalf("%d socket errors in 1 s: the loops spin", st.SocketErrors)
	}
	if n := h.count(); n == 0 || n > 6 {
		t.Fatalf("%d socket error log lines in 1 s (errors %d)", n, st.SocketErrors)
	}
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hangs with failing sockets")
	}
}
