package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testConfig is DefaultConfig with short timeouts so tests run fast.
func testConfig() Config {
	c := DefaultConfig()
	c.Seed = 1
	c.ConnectionTimeout = 1 * time.Second
	c.ImageLivenessTimeout = 2 * time.Second
	c.PublicationLinger = 1 * time.Second
	c.StatusMessageTimeout = 50 * time.Millisecond
	return c
}

func newTestDriver(t testing.TB, cfg Config) *Driver {
	t.Helper()
	d, err := NewDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkNoLeak verifies the goroutine count returns to its baseline.
func checkNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				n := runtime.Stack(buf, true)
				t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func mixedSize(r *rand.Rand, maxMsg int) int {
	switch k := r.IntN(100); {
	case k < 70:
		return 8 + r.IntN(100)
	case k < 95:
		return 100 + r.IntN(2000)
	default:
		return 2000 + r.IntN(min(maxMsg, 100_000)-2000)
	}
}

func fillMsg(buf []byte, i int) []byte {
	binary.LittleEndian.PutUint64(buf, uint64(i))
	for k := 8; k < len(buf); k++ {
		buf[k] = byte(i + k)
	}
	return buf
}

func checkMsg(m []byte, i int) error {
	if len(m) < 8 || binary.LittleEndian.Uint64(m) != uint64(i) {
		return fmt.Errorf("message %d: got index %d (len %d)", i, binary.LittleEndian.Uint64(m), len(m))
	}
	for k := 8; k < len(m); k++ {
		if m[k] != byte(i+k) {
			return fmt.Errorf("message %d: byte %d corrupt", i, k)
		}
	}
	return nil
}

// streamTest offers n messages of mixed sizes on pub and checks sub
// receives them complete and in order.
func streamTest(t *testing.T, pub *Publication, sub *Subscription, n int, seed uint64) {
	t.Helper()
	sizes := make([]int, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range sizes {
		sizes[i] = mixedSize(r, pub.MaxMessageLength())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var recvErr error
	got := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for got < n && ctx.Err() == nil {
			if sub.Poll(func(m []byte, h Header) {
				if recvErr != nil {
					return
				}
				if len(m) != sizes[got] {
					recvErr = fmt.Errorf("message %d: %d bytes, want %d", got, len(m), sizes[got])
					return
				}
				if err := checkMsg(m, got); err != nil {
					recvErr = err
					return
				}
				got++
			}, 256) == 0 {
				wctx, wc := context.WithTimeout(ctx, 50*time.Millisecond)
				sub.Wait(wctx)
				wc()
			}
			if recvErr != nil {
				return
			}
		}
	}()
	buf := make([]byte, pub.MaxMessageLength())
	for i := 0; i < n && ctx.Err() == nil; {
		_, err := pub.Offer(fillMsg(buf[:sizes[i]], i))
		switch err {
		case nil:
			i++
		case ErrBackPressured, ErrNotConnected:
			runtime.Gosched()
		default:
			t.Fatalf("offer %d: %v", i, err)
		}
	}
	wg.Wait()
	if recvErr != nil {
		t.Fatal(recvErr)
	}
	if got != n {
		t.Fatalf("received %d of %d messages (%v)\npub %+v\nsub %+v", got, n, ctx.Err(), pub.Stats(), sub.Stats())
	}
}

func TestUDPStreamMixedSizes(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	sub, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 7)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := d.AddPublication("aeron:udp?endpoint="+sub.LocalAddr(), 7)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "connection", pub.IsConnected)
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 50_000 // -race slows the data path ~10x; the full million runs without it
	}
	streamTest(t, pub, sub, n, 1)
	ps, ss := pub.Stats(), sub.Stats()
	if ps.FramesSent == 0 || ss.FramesReceived == 0 || ss.StatusMessagesSent == 0 || ps.StatusMessages == 0 || ss.MessagesDelivered != uint64(n) {
		t.Fatalf("stats: pub %+v sub %+v", ps, ss)
	}
	d.Close()
}
