package aeronclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
	"github.com/steadfast-pods/steadfast/transport/mediadriver"
)

// The tests below run the standalone driver (transport/mediadriver) and
// some clients as separate processes: the test binary re-executes itself
// with STEADFAST_CNC_CHILD set to the role.

func TestMain(m *testing.M) {
	switch os.Getenv("STEADFAST_CNC_CHILD") {
	case "driver":
		os.Exit(childDriver())
	case "publisher":
		os.Exit(childPublisher())
	case "subscriber":
		os.Exit(childSubscriber())
	}
	os.Exit(m.Run())
}

func childDriver() int {
	liveness, _ := time.ParseDuration(os.Getenv("STEADFAST_CNC_LIVENESS"))
	d, err := mediadriver.New(mediadriver.Config{Dir: os.Getenv("STEADFAST_CNC_DIR"),
		ClientLivenessTimeout: liveness, IPCTermLength: 1 << 20, TermLength: 1 << 20,
		PublicationLinger: 500 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	if err := d.Close(); err != nil {
		return 1
	}
	return 0
}

// childPublisher publishes on IPC stream 9 until killed.
func childPublisher() int {
	c, err := Connect(Config{Dir: os.Getenv("STEADFAST_CNC_DIR"), ConnectTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pub, err := c.AddPublication("aeron:ipc", 9)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		if _, err := pub.Offer([]byte(strconv.Itoa(i))); err != nil && !retryable(err) {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(time.Millisecond)
	}
}

func retryable(err error) bool {
	return errors.Is(err, transport.ErrBackPressured) || errors.Is(err, transport.ErrNotConnected)
}

type child struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startChild(t *testing.T, role, dir string, liveness time.Duration) *child {
	t.Helper()
	ch := &child{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	ch.cmd.Env = append(os.Environ(), "STEADFAST_CNC_CHILD="+role, "STEADFAST_CNC_DIR="+dir,
		"STEADFAST_CNC_LIVENESS="+liveness.String())
	ch.cmd.Stdout, ch.cmd.Stderr = &ch.out, &ch.out
	if err := ch.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ch.cmd.Process.Kill()
		_ = ch.cmd.Wait()
		if t.Failed() {
			t.Logf("%s process output:\n%s", role, ch.out.String())
		}
	})
	return ch
}

// startDriver runs the standalone driver in a child process and connects a
// client to it.
func startDriver(t *testing.T, liveness time.Duration) (string, *child) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "aeron")
	return dir, startChild(t, "driver", dir, liveness)
}

func connect(t *testing.T, dir string, timeout time.Duration) *Client {
	t.Helper()
	c, err := Connect(Config{Dir: dir, ConnectTimeout: 10 * time.Second, DriverTimeout: timeout,
		KeepaliveInterval: min(timeout/4, 500*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestMediaDriverRoundTrip: a publishing client and a subscribing client
// (distinct clients) through the driver process, over IPC and UDP, with
// fragmented messages and term rotations.
func TestMediaDriverRoundTrip(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	pc := connect(t, dir, 10*time.Second)
	sc := connect(t, dir, 10*time.Second)
	for _, ch := range []string{"aeron:ipc?term-length=64k", "aeron:udp?endpoint=127.0.0.1:0|term-length=64k|mtu=1408"} {
		if ch[6] == 'u' {
			ch = fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d|term-length=64k|mtu=1408", freePort(t))
		}
		t.Run(ch[:9], func(t *testing.T) { roundTrip(t, pc, sc, ch, 3000) })
	}
}

// TestSharedPublicationRemoval: two clients add the same (shared)
// publication; each removes its own registration (the correlation id of
// its add, not the publication's original registration id, which only the
// first client's add created), without an error, and the other's keeps
// publishing on the shared log.
func TestSharedPublicationRemoval(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	a := connect(t, dir, 10*time.Second)
	b := connect(t, dir, 10*time.Second)
	const ch = "aeron:ipc?term-length=64k"
	sub, pa, pb := must(a.AddSubscription(ch, 6))(t), must(a.AddPublication(ch, 6))(t), must(b.AddPublication(ch, 6))(t)
	if pa.SessionID() != pb.SessionID() || pa.OriginalRegistrationID() != pb.OriginalRegistrationID() ||
		pa.RegistrationID() == pb.RegistrationID() || pb.RegistrationID() == pb.OriginalRegistrationID() {
		t.Fatalf("shared publication: a session %d reg %d/%d, b session %d reg %d/%d", pa.SessionID(), pa.RegistrationID(),
			pa.OriginalRegistrationID(), pb.SessionID(), pb.RegistrationID(), pb.OriginalRegistrationID())
	}
	if err := pb.Close(); err != nil {
		t.Fatalf("second client's remove: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		_, err := pa.Offer([]byte("still here"))
		return err == nil
	})
	got := ""
	waitFor(t, 10*time.Second, func() bool {
		sub.Poll(func(msg []byte, _ transport.Header) { got = string(msg) }, 1)
		return got != ""
	})
	if got != "still here" {
		t.Fatalf("received %q", got)
	}
	if err := pa.Close(); err != nil {
		t.Fatalf("first client's remove: %v", err)
	}
}

// TestMediaDriverBackPressure: a subscriber that does not poll stops the
// publisher with ErrBackPressured once the window is used; polling lets it
// go on, nothing lost.
func TestMediaDriverBackPressure(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	c := connect(t, dir, 10*time.Second)
	sub, err := c.AddSubscription("aeron:ipc?term-length=64k", 3)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.AddPublication("aeron:ipc?term-length=64k", 3)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, pub.IsConnected)
	msg := make([]byte, 100)
	sent := 0
	for {
		_, err := pub.Offer(msg)
		if errors.Is(err, transport.ErrBackPressured) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 10000 {
			t.Fatal("never back pressured")
		}
	}
	// The window is half a 64 KiB term: 128-byte frames.
	if sent < 200 || sent > 300 {
		t.Errorf("%d messages before back pressure, want about 256", sent)
	}
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for target := sent + 5000; sent < target && time.Now().Before(deadline); {
		if _, err := pub.Offer(msg); err == nil {
			sent++
		} else if !errors.Is(err, transport.ErrBackPressured) {
			t.Fatal(err)
		}
		got += sub.Poll(func([]byte, transport.Header) {}, 100)
	}
	for time.Now().Before(deadline) && got < sent {
		got += sub.Poll(func([]byte, transport.Header) {}, 100)
	}
	if got != sent {
		t.Errorf("sent %d received %d", sent, got)
	}
}

// TestMediaDriverClientKilled: a client process publishing over IPC is
// killed with SIGKILL; after the liveness timeout the driver releases its
// publication (our image of it goes unavailable) and its heartbeat
// counter.
func TestMediaDriverClientKilled(t *testing.T) {
	// Long enough that this test's own client (heartbeating every 500 ms)
	// is not timed out on a loaded machine.
	const liveness = 3 * time.Second
	dir, _ := startDriver(t, liveness)
	c := connect(t, dir, 10*time.Second)
	var mu sync.Mutex
	var gone []transport.Image
	sub, err := c.AddSubscription("aeron:ipc", 9, WithImageHandlers(nil, func(img transport.Image) {
		mu.Lock()
		gone = append(gone, img)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	pubProc := startChild(t, "publisher", dir, 0)
	got := 0
	waitFor(t, 10*time.Second, func() bool {
		got += sub.Poll(func([]byte, transport.Header) {}, 100)
		return got > 50
	})
	heartbeats := func() int {
		n := 0
		c.cnc.Counters.ForEach(func(ctr cnc.Counter, err error) {
			if ctr.TypeID == cnc.TypeClientHeartbeat {
				n++
			}
		})
		return n
	}
	if n := heartbeats(); n != 2 {
		t.Fatalf("%d client heartbeat counters, want 2", n)
	}
	killed := time.Now()
	if err := pubProc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		sub.Poll(func([]byte, transport.Header) {}, 100)
		mu.Lock()
		defer mu.Unlock()
		return len(gone) == 1
	})
	released := time.Since(killed)
	if n := heartbeats(); n != 1 {
		t.Errorf("%d heartbeat counters after the kill, want 1", n)
	}
	if sub.IsConnected() {
		t.Error("subscription still has an image")
	}
	t.Logf("killed client released after %v (liveness timeout %v)", released, liveness)
}

// TestMediaDriverKilled: the driver process is killed with SIGKILL; the
// client reports ErrDriverTimeout within its driver timeout (plus a
// keepalive interval), and calls fail instead of hanging.
func TestMediaDriverKilled(t *testing.T) {
	dir, drv := startDriver(t, 10*time.Second)
	const timeout = time.Second
	c := connect(t, dir, timeout)
	pub, err := c.AddPublication("aeron:ipc", 5)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := drv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The point is that the death is reported, not hung: waitFor fails the
	// test if it is not within 10 timeouts (a loaded CI machine took 4.3 s
	// for a 1 s timeout); the figure is logged.
	waitFor(t, 10*timeout, func() bool { return c.Err() != nil })
	t.Logf("noticed after %v, timeout %v", time.Since(killed), timeout)
	if !errors.Is(c.Err(), ErrDriverTimeout) {
		t.Errorf("client error %v, want ErrDriverTimeout", c.Err())
	}
	if _, err := pub.Offer([]byte("x")); !errors.Is(err, transport.ErrClosed) || !errors.Is(err, ErrDriverTimeout) {
		t.Errorf("offer after driver death: %v", err)
	}
	start := time.Now()
	if _, err := c.AddSubscription("aeron:ipc", 5); !errors.Is(err, ErrDriverTimeout) {
		t.Errorf("add subscription after driver death: %v", err)
	}
	// It must fail at once rather than wait for a driver answer; 2 s is a
	// hang bound with room for a loaded machine.
	if time.Since(start) > 2*time.Second {
		t.Errorf("add subscription took %v on a dead client", time.Since(start))
	}
}

// TestMediaDriverManyClients: eight publishing clients and one subscriber
// on one IPC stream: every client's messages arrive, in order per session.
func TestMediaDriverManyClients(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	sc := connect(t, dir, 10*time.Second)
	sub, err := sc.AddSubscription("aeron:ipc", 4)
	if err != nil {
		t.Fatal(err)
	}
	const clients, per = 8, 2000
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < clients; i++ {
		c := connect(t, dir, 10*time.Second)
		pub, err := c.AddExclusivePublication("aeron:ipc", 4)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < per && ctx.Err() == nil; {
				_, err := pub.Offer([]byte(strconv.Itoa(seq)))
				if err == nil {
					seq++
				} else if !retryable(err) {
					errs <- err
					return
				}
			}
		}()
	}
	next := map[int32]int{}
	total := 0
	for total < clients*per && ctx.Err() == nil {
		total += sub.Poll(func(msg []byte, h transport.Header) {
			if string(msg) != strconv.Itoa(next[h.SessionID]) {
				t.Errorf("session %d: got %q want %d", h.SessionID, msg, next[h.SessionID])
			}
			next[h.SessionID]++
		}, 100)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(next) != clients || total != clients*per {
		t.Errorf("%d sessions, %d messages", len(next), total)
	}
}

// TestMediaDriverCleanShutdown: SIGTERM removes cnc.dat, the log buffers
// and the directory the driver created; a second driver refuses a
// directory whose driver is alive.
func TestMediaDriverCleanShutdown(t *testing.T) {
	dir, drv := startDriver(t, 10*time.Second)
	c := connect(t, dir, 10*time.Second)
	if _, err := c.AddPublication("aeron:ipc", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := mediadriver.New(mediadriver.Config{Dir: dir}); !errors.Is(err, mediadriver.ErrActive) {
		t.Errorf("second driver: %v", err)
	}
	if err := drv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if err := drv.cmd.Wait(); err != nil {
		t.Fatalf("driver exit: %v\n%s", err, drv.out.String())
	}
	// The client hears of the shutdown at once, not after its timeout.
	waitFor(t, 5*time.Second, func() bool { return c.Err() != nil })
	if !errors.Is(c.Err(), ErrDriverTimeout) || time.Since(stopped) > 5*time.Second {
		t.Errorf("client after driver shutdown: %v after %v", c.Err(), time.Since(stopped))
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(dir)
		t.Errorf("directory left behind: %v %v", err, entries)
	}
}

// must turns a (value, error) result into a getter that fails the test on
// the error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEmbeddedInterop: a stream from the embedded driver (package
// transport, this process) to a client of the driver process, and back,
// over UDP.
func TestEmbeddedInterop(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	c := connect(t, dir, 10*time.Second)
	emb, err := transport.NewDriver(transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	for _, dirn := range []string{"embedded->client", "client->embedded"} {
		t.Run(dirn, func(t *testing.T) {
			ch := fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d", freePort(t))
			var pub transport.Publisher
			var sub transport.Subscriber
			if dirn == "embedded->client" {
				s, err := c.AddSubscription(ch, 21)
				if err != nil {
					t.Fatal(err)
				}
				p, err := emb.AddPublication(ch, 21)
				if err != nil {
					t.Fatal(err)
				}
				pub, sub = p, s
			} else {
				s, err := emb.AddSubscription(ch, 21)
				if err != nil {
					t.Fatal(err)
				}
				p, err := c.AddPublication(ch, 21)
				if err != nil {
					t.Fatal(err)
				}
				pub, sub = p, s
			}
			defer pub.Close()
			defer sub.Close()
			const n = 2000
			sent, got := 0, 0
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for got < n && ctx.Err() == nil {
				if sent < n {
					msg := bytes.Repeat([]byte{byte(sent)}, 1+sent%3000)
					if _, err := pub.Offer(msg); err == nil {
						sent++
					} else if !retryable(err) {
						t.Fatal(err)
					}
				}
				sub.Poll(func(msg []byte, h transport.Header) {
					if len(msg) != 1+got%3000 || msg[0] != byte(got) {
						t.Fatalf("message %d: %d bytes", got, len(msg))
					}
					got++
				}, 64)
			}
			if got != n {
				if cs, ok := sub.(*Subscription); ok {
					cs.mu.Lock()
					for _, img := range cs.images {
						l := img.rd.Log
						app := cnc.NewAppender(l, 0, 0)
						pos := img.rd.Position()
						idx := int((pos >> l.PositionBitsToShift()) % 3)
						off := int(pos & int64(l.TermLength-1))
						t.Logf("image %d: reader at %d, appended to %d, frame length there %d, sub-pos %d, dropped %d",
							img.sessionID, pos, app.Position(), cnc.LoadInt32(l.Terms[idx], off), cnc.LoadInt64(img.subPos, 0), img.rd.Dropped)
						term := l.Terms[idx]
						var last []string
						for o := 0; o < off && o+32 <= len(term); {
							n := int(cnc.LoadInt32(term, o))
							last = append(last, fmt.Sprintf("@%d len %d hdr-off %d flags %#x", o, n, int32(binary.LittleEndian.Uint32(term[o+8:])), term[o+5]))
							if len(last) > 4 {
								last = last[1:]
							}
							if n <= 0 {
								break
							}
							o += (n + 31) &^ 31
						}
						t.Logf("frames before: %v", last)
						// Find the next real header after the reader position.
						for o := off; o < off+4096 && o+32 <= len(term); o += 32 {
							if int32(binary.LittleEndian.Uint32(term[o+8:])) == int32(o) {
								t.Logf("next header at %d (reader at %d): len %d flags %#x", o, off, cnc.LoadInt32(term, o), term[o+5])
								break
							}
						}
					}
					cs.mu.Unlock()
				}
				if cp, ok := pub.(*Publication); ok {
					t.Logf("publication: position %d, limit %d, connected %v", cp.Position(), cp.PositionLimit(), cp.IsConnected())
				}
				t.Fatalf("received %d of %d (sent %d)", got, n, sent)
			}
		})
	}
}

// TestImageTermLengthIsThePublishers: a client subscribes with a short
// term-length on its channel (64 KiB: longest message 8 KiB) to a stream
// whose publisher (the embedded driver) uses 1 MiB terms and sends 16 KiB
// messages. The driver lays out the client's image with the publisher's
// term length, as Aeron's receivers do (from the SETUP), so every message
// arrives; an image laid out from the subscription's channel could not
// hold them and dropped them for good (the cause of a stream that stalled
// under load: a publisher that fell behind sent larger messages).
func TestImageTermLengthIsThePublishers(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	c := connect(t, dir, 10*time.Second)
	emb := must(transport.NewDriver(transport.DefaultConfig()))(t)
	defer emb.Close()
	ep := fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d", freePort(t))
	sub := must(c.AddSubscription(ep+"|term-length=64k", 22))(t)
	defer sub.Close()
	pub := must(emb.AddPublication(ep+"|term-length=1m", 22))(t)
	defer pub.Close()
	const n = 20
	sent, got := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got < n && ctx.Err() == nil {
		if sent < n {
			if _, err := pub.Offer(bytes.Repeat([]byte{byte(sent)}, 16<<10)); err == nil {
				sent++
			} else if !retryable(err) {
				t.Fatal(err)
			}
		}
		if sub.Poll(func(msg []byte, h transport.Header) {
			if len(msg) != 16<<10 || msg[0] != byte(got) {
				t.Fatalf("message %d: %d bytes, first %d", got, len(msg), msg[0])
			}
			got++
		}, 8) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if got != n {
		t.Fatalf("received %d of %d 16 KiB messages (sent %d)", got, n, sent)
	}
}

// TestClientErrorsAndClose: the driver's refusal of a bad channel comes
// back as a DriverError; a closed client's publications, subscriptions
// and heartbeat counter are released at once (CLIENT_CLOSE), not after
// the liveness timeout.
func TestClientErrorsAndClose(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	watcher := connect(t, dir, 10*time.Second)
	c := connect(t, dir, 10*time.Second)
	_, err := c.AddPublication("aeron:tcp?endpoint=x", 1)
	var de *DriverError
	if !errors.As(err, &de) || !errors.Is(err, ErrDriver) || de.Code != cnc.ErrCodeInvalidChannel {
		t.Fatalf("bad channel: %v", err)
	}
	if _, err := c.AddSubscription("aeron:udp?endpoint=127.0.0.1:99999", 1); !errors.Is(err, ErrDriver) {
		t.Errorf("bad endpoint port: %v", err)
	}
	if _, err := c.AddPublication("aeron:ipc", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddSubscription("aeron:ipc", 2); err != nil {
		t.Fatal(err)
	}
	count := func() (heartbeats, streams int) {
		watcher.cnc.Counters.ForEach(func(ctr cnc.Counter, err error) {
			switch ctr.TypeID {
			case cnc.TypeClientHeartbeat:
				heartbeats++
			case cnc.TypePublisherLimit, cnc.TypeSubscriberPosition:
				streams++
			}
		})
		return
	}
	// The image (and its position counter) follows the subscription-ready
	// response.
	waitFor(t, 5*time.Second, func() bool { hb, st := count(); return hb == 2 && st == 2 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { hb, st := count(); return hb == 1 && st == 0 })
	if _, err := c.AddPublication("aeron:ipc", 2); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("add after close: %v", err)
	}
}

// TestMediaDriverUDPFanOut: two clients subscribe to the same UDP channel
// and stream (one socket in the driver); both get every message.
func TestMediaDriverUDPFanOut(t *testing.T) {
	dir, _ := startDriver(t, 10*time.Second)
	ch := fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d", freePort(t))
	var subs []*Subscription
	for i := 0; i < 2; i++ {
		s, err := connect(t, dir, 10*time.Second).AddSubscription(ch, 8)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	pub, err := connect(t, dir, 10*time.Second).AddPublication(ch, 8)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	got := make([]int, len(subs))
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	for (got[0] < n || got[1] < n) && time.Now().Before(deadline) {
		if sent < n {
			if _, err := pub.Offer([]byte(strconv.Itoa(sent))); err == nil {
				sent++
			}
		}
		for i, s := range subs {
			s.Poll(func(msg []byte, h transport.Header) {
				if string(msg) != strconv.Itoa(got[i]) {
					t.Fatalf("subscriber %d: got %q want %d", i, msg, got[i])
				}
				got[i]++
			}, 100)
		}
	}
	if got[0] != n || got[1] != n {
		t.Errorf("received %v of %d", got, n)
	}
}
