package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// collector polls a subscription in its own goroutine and records messages
// and image events.
type collector struct {
	sub    *Subscription
	mu     sync.Mutex
	msgs   []string
	heads  []Header
	avail  []Image
	unavl  []Image
	stop   chan struct{}
	done   chan struct{}
	events atomic.Int32
}

func collect(t *testing.T, d *Driver, channel string, stream int32) *collector {
	t.Helper()
	c := &collector{stop: make(chan struct{}), done: make(chan struct{})}
	sub, err := d.AddSubscription(channel, stream, WithImageHandlers(
		func(img Image) { c.mu.Lock(); c.avail = append(c.avail, img); c.mu.Unlock(); c.events.Add(1) },
		func(img Image) { c.mu.Lock(); c.unavl = append(c.unavl, img); c.mu.Unlock(); c.events.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	c.sub = sub
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			if sub.Poll(func(m []byte, h Header) {
				c.mu.Lock()
				c.msgs = append(c.msgs, string(m))
				c.heads = append(c.heads, h)
				c.mu.Unlock()
			}, 64) == 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				if sub.Wait(ctx) == ErrClosed {
					cancel()
					return
				}
				cancel()
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *collector) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *collector) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.msgs) }
func (c *collector) snapshot() ([]string, []Header, []Image, []Image) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...), append([]Header(nil), c.heads...), append([]Image(nil), c.avail...), append([]Image(nil), c.unavl...)
}

func offerAll(t *testing.T, pub *Publication, msgs ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, m := range msgs {
		for {
			_, err := pub.Offer([]byte(m))
			if err == nil {
				break
			}
			if !errors.Is(err, ErrBackPressured) && !errors.Is(err, ErrNotConnected) {
				t.Fatalf("offer: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("offer %q: %v for 20 s", m, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestSubscriberGoesAwayAndComesBack: the publication reports not
// connected within the connection timeout once its subscriber's driver is
// gone, and reconnects to a new subscriber bound on the same endpoint.
func TestSubscriberGoesAwayAndComesBack(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	dp := newTestDriver(t, cfg)
	ds1 := newTestDriver(t, cfg)
	c1 := collect(t, ds1, "aeron:udp?endpoint=127.0.0.1:0", 5)
	addr := c1.sub.LocalAddr()
	pub, err := dp.AddPublication("aeron:udp?endpoint="+addr, 5)
	if err != nil {
		t.Fatal(err)
	}
	offerAll(t, pub, "one", "two")
	eventually(t, 10*time.Second, "two messages", func() bool { return c1.count() == 2 })
	c1.close()
	ds1.Close()
	gone := time.Now()
	eventually(t, 10*time.Second, "not connected", func() bool { return !pub.IsConnected() })
	// Generous margin: the check is "within the connection timeout", not
	// a latency measurement, and CI machines are loaded.
	if el := time.Since(gone); el > cfg.ConnectionTimeout+5*time.Second {
		t.Fatalf("not connected only after %v", el)
	}
	if _, err := pub.Offer([]byte("lost")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("offer while disconnected: %v", err)
	}
	ds2 := newTestDriver(t, cfg)
	c2 := collect(t, ds2, "aeron:udp?endpoint="+addr, 5)
	eventually(t, 10*time.Second, "reconnect", pub.IsConnected)
	offerAll(t, pub, "three", "four")
	eventually(t, 10*time.Second, "messages after reconnect", func() bool { return c2.count() == 2 })
	msgs, _, avail, _ := c2.snapshot()
	if msgs[0] != "three" || msgs[1] != "four" || len(avail) != 1 || avail[0].SessionID != pub.SessionID() {
		t.Fatalf("after reconnect: %q, images %+v", msgs, avail)
	}
	if st := pub.Stats(); st.SetupRequests == 0 || st.SetupsSent < 2 {
		t.Fatalf("no 0x80 SM / SETUP exchange on reconnect: %+v", st)
	}
	c2.close()
	dp.Close()
	ds2.Close()
}

// TestRestartedPublisherIsNewImage: a publisher restarted (new driver) is a
// new session: a new image becomes available; the old one goes away.
func TestRestartedPublisherIsNewImage(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	ds := newTestDriver(t, cfg)
	c := collect(t, ds, "aeron:udp?endpoint=127.0.0.1:0", 9)
	addr := c.sub.LocalAddr()
	cfgA := cfg
	cfgA.Seed = 11
	dpA := newTestDriver(t, cfgA)
	pubA, _ := dpA.AddPublication("aeron:udp?endpoint="+addr, 9)
	offerAll(t, pubA, "a1")
	eventually(t, 10*time.Second, "a1", func() bool { return c.count() == 1 })
	dpA.Close() // crash-like: no end of stream
	cfgB := cfg
	cfgB.Seed = 22
	dpB := newTestDriver(t, cfgB)
	pubB, _ := dpB.AddPublication("aeron:udp?endpoint="+addr, 9)
	offerAll(t, pubB, "b1")
	eventually(t, 10*time.Second, "b1", func() bool { return c.count() == 2 })
	eventually(t, 15*time.Second, "old image unavailable", func() bool {
		_, _, _, un := c.snapshot()
		return len(un) == 1
	})
	msgs, heads, avail, un := c.snapshot()
	if msgs[1] != "b1" || len(avail) != 2 || avail[0].SessionID == avail[1].SessionID ||
		heads[1].SessionID != pubB.SessionID() || un[0].SessionID != pubA.SessionID() {
		t.Fatalf("msgs %q heads %+v avail %+v unavailable %+v", msgs, heads, avail, un)
	}
	if imgs := c.sub.Images(); len(imgs) != 1 || imgs[0].SessionID != pubB.SessionID() {
		t.Fatalf("images now %+v", imgs)
	}
}

// TestEndOfStream: closing a publication drains it; the image becomes
// unavailable after every message was delivered, with EndOfStream set.
func TestEndOfStream(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	d := newTestDriver(t, cfg)
	c := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0", 3)
	pub, _ := d.AddPublication("aeron:udp?endpoint="+c.sub.LocalAddr(), 3)
	var want []string
	for i := 0; i < 500; i++ {
		want = append(want, strings.Repeat("x", i*7%3000))
	}
	offerAll(t, pub, want...)
	pub.Close()
	if _, err := pub.Offer([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("offer after close: %v", err)
	}
	eventually(t, 10*time.Second, "image unavailable", func() bool {
		_, _, _, un := c.snapshot()
		return len(un) == 1
	})
	msgs, _, _, un := c.snapshot()
	if len(msgs) != len(want) {
		t.Fatalf("%d messages before unavailable, want %d", len(msgs), len(want))
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Fatalf("message %d differs", i)
		}
	}
	if !un[0].EndOfStream {
		t.Fatalf("unavailable image without end of stream: %+v", un[0])
	}
	// The sender ends its linger early on the 0x40 SM and stops its
	// goroutines (checked by checkNoLeak after Close).
	eventually(t, 10*time.Second, "publication retired", func() bool { return d.Stats().Publications == 0 })
}

// TestIPC: publication and subscription in one driver share the log.
func TestIPC(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	pubNC, _ := d.AddPublication("aeron:ipc", 4)
	if _, err := pubNC.Offer([]byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("ipc offer without subscriber: %v", err)
	}
	pubNC.Close()
	sub, err := d.AddSubscription("aeron:ipc", 4)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := d.AddPublication("aeron:ipc?term-length=64k", 4)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.IsConnected() || !sub.IsConnected() {
		t.Fatal("ipc not connected")
	}
	streamTest(t, pub, sub, 20000, 3)
	pub.Close()
	eventually(t, 5*time.Second, "ipc image gone", func() bool {
		sub.Poll(func([]byte, Header) {}, 10)
		return !sub.IsConnected()
	})
	if st := sub.Stats(); st.ImagesUnavailable != 1 || st.MessagesDelivered != 20000 {
		t.Fatalf("ipc stats %+v", st)
	}
}

// TestSeveralPublishersOneSubscription: one image per session.
func TestSeveralPublishersOneSubscription(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	ds := newTestDriver(t, cfg)
	c := collect(t, ds, "aeron:udp?endpoint=127.0.0.1:0", 2)
	var pubs []*Publication
	for i := 0; i < 3; i++ {
		cf := cfg
		cf.Seed = int64(100 + i)
		d := newTestDriver(t, cf)
		p, err := d.AddPublication("aeron:udp?endpoint="+c.sub.LocalAddr(), 2)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	for i := 0; i < 100; i++ {
		for k, p := range pubs {
			offerAll(t, p, string(rune('a'+k))+strings.Repeat("-", i))
		}
	}
	eventually(t, 10*time.Second, "300 messages", func() bool { return c.count() == 300 })
	msgs, heads, avail, _ := c.snapshot()
	next := map[int32]int{}
	for i, m := range msgs {
		k := int(m[0] - 'a')
		if heads[i].SessionID != pubs[k].SessionID() || len(m) != 1+next[heads[i].SessionID] {
			t.Fatalf("message %d %q from session %d out of order", i, m, heads[i].SessionID)
		}
		next[heads[i].SessionID]++
	}
	if len(avail) != 3 || len(c.sub.Images()) != 3 {
		t.Fatalf("images: %+v", avail)
	}
}

// TestLossyRelay streams through a UDP relay on 127.0.0.1 that drops,
// duplicates and reorders datagrams in both directions. With MTU 65504
// and a low DirectReadMin the receiver also reads in-order datagrams straight
// into the image (and must recover when a datagram read there belongs
// elsewhere).
func TestLossyRelay(t *testing.T) {
	for _, mtu := range []int{1408, 65504} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			checkNoLeak(t)
			cfg := testConfig()
			if mtu > 8192 {
				cfg.DirectReadMin = 2048
			}
			ds := newTestDriver(t, cfg)
			sub, err := ds.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 6)
			if err != nil {
				t.Fatal(err)
			}
			relay := startRelay(t, netip.MustParseAddrPort(sub.LocalAddr()), 7)
			dp := newTestDriver(t, cfg)
			pub, err := dp.AddPublication(fmt.Sprintf("aeron:udp?endpoint=%s|mtu=%d", relay.front.LocalAddr(), mtu), 6)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "connection through relay", pub.IsConnected)
			n := 20000
			if raceEnabled {
				n = 5000
			}
			streamTest(t, pub, sub, n, 4)
			relay.stop()
			ps := pub.Stats()
			if relay.dropped.Load() == 0 || relay.duplicated.Load() == 0 || relay.reordered.Load() == 0 || ps.Retransmits == 0 || sub.Stats().NAKsSent == 0 {
				t.Fatalf("relay did not exercise loss: dropped %d dup %d reordered %d, pub %+v",
					relay.dropped.Load(), relay.duplicated.Load(), relay.reordered.Load(), ps)
			}
			if mtu > 8192 {
				ep := sub.media.(*udpSubscription).ep
				ep.mu.Lock()
				inPlace, dgrams := ep.core.c.inPlace, ep.core.c.datagrams
				ep.mu.Unlock()
				if inPlace == 0 || inPlace == dgrams {
					t.Fatalf("in-place reads not exercised: %d of %d datagrams", inPlace, dgrams)
				}
				t.Logf("%d of %d datagrams stored in place", inPlace, dgrams)
			}
		})
	}
}

type relay struct {
	front, back                    *net.UDPConn
	dropped, duplicated, reordered atomic.Int64
	wg                             sync.WaitGroup
}

// startRelay forwards datagrams between a publisher (front) and target
// (back), dropping 5 %, duplicating 3 % and holding back 5 % until the
// next datagram, with a seeded generator per direction.
func startRelay(t *testing.T, target netip.AddrPort, seed uint64) *relay {
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	front.SetReadBuffer(4 << 20)
	back.SetReadBuffer(4 << 20)
	r := &relay{front: front, back: back}
	var client atomic.Pointer[netip.AddrPort]
	pump := func(in, out *net.UDPConn, dest func() (netip.AddrPort, bool), learn bool, s uint64) {
		defer r.wg.Done()
		rng := newRelayRand(s)
		buf := make([]byte, 65536)
		var held []byte
		for {
			n, from, err := in.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if learn {
				f := from
				client.Store(&f)
			}
			to, ok := dest()
			if !ok {
				continue
			}
			pkt := append([]byte(nil), buf[:n]...)
			switch x := rng.next() % 100; {
			case x < 5:
				r.dropped.Add(1)
				continue
			case x < 8:
				r.duplicated.Add(1)
				out.WriteToUDPAddrPort(pkt, to)
			case x < 13 && held == nil:
				r.reordered.Add(1)
				held = pkt
				continue
			}
			out.WriteToUDPAddrPort(pkt, to)
			if held != nil {
				out.WriteToUDPAddrPort(held, to)
				held = nil
			}
		}
	}
	r.wg.Add(2)
	go pump(front, back, func() (netip.AddrPort, bool) { return target, true }, true, seed)
	go pump(back, front, func() (netip.AddrPort, bool) {
		c := client.Load()
		if c == nil {
			return netip.AddrPort{}, false
		}
		return *c, true
	}, false, seed+1)
	t.Cleanup(r.stop)
	return r
}

func (r *relay) stop() {
	r.front.Close()
	r.back.Close()
	r.wg.Wait()
}

type relayRand struct{ s uint64 }

func newRelayRand(seed uint64) *relayRand { return &relayRand{seed*2654435761 + 1} }
func (r *relayRand) next() uint64 {
	r.s ^= r.s << 13
	r.s ^= r.s >> 7
	r.s ^= r.s << 17
	return r.s
}

// TestGarbageDatagramsCounted: malformed datagrams sent to a bound
// endpoint are dropped and counted by reason; the stream keeps working.
func TestGarbageDatagramsCounted(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	c := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0", 8)
	raw, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(c.sub.LocalAddr())))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bad := [][]byte{
		{1, 2, 3}, // short
		append([]byte{40, 0, 0, 0, 1, 0xC0, 1, 0}, make([]byte, 56)...),   // version 1
		append([]byte{40, 0, 0, 0, 0, 0xC0, 99, 0}, make([]byte, 56)...),  // unknown type
		append([]byte{0xff, 0, 0, 0, 0, 0xC0, 1, 0}, make([]byte, 56)...), // truncated
	}
	for _, b := range bad {
		raw.Write(b)
	}
	// Data for a stream nobody subscribed.
	var hb [32]byte
	raw.Write(encodeHeartbeat(hb[:], flagsUnfrag, 0, 1, 12345, 0))
	eventually(t, 5*time.Second, "invalid datagrams counted", func() bool {
		st := d.Stats()
		return st.InvalidDatagrams["short"] == 1 && st.InvalidDatagrams["version"] == 1 &&
			st.InvalidDatagrams["unknown-type"] == 1 && st.InvalidDatagrams["truncated"] == 1 && st.UnknownStream == 1
	})
	pub, _ := d.AddPublication("aeron:udp?endpoint="+c.sub.LocalAddr(), 8)
	offerAll(t, pub, "still works")
	eventually(t, 5*time.Second, "message after garbage", func() bool { return c.count() == 1 })
}

// TestSpinIdle runs a stream with spinning send goroutines.
func TestSpinIdle(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	cfg.SpinIdle = true
	d := newTestDriver(t, cfg)
	sub, _ := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 1)
	pub, _ := d.AddPublication("aeron:udp?endpoint="+sub.LocalAddr(), 1)
	eventually(t, 10*time.Second, "connected", pub.IsConnected)
	streamTest(t, pub, sub, 5000, 9)
	d.Close()
}

// TestChannelParamsOnTheWire: session-id, init-term-id/term-id/term-offset
// and term-length on a publication; a session-id filter on a subscription.
func TestChannelParamsOnTheWire(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	c := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0|session-id=4242|rcv-wnd=64k|nak-delay=200us", 3)
	addr := c.sub.LocalAddr()
	other, _ := d.AddPublication("aeron:udp?endpoint="+addr+"|session-id=1", 3)
	pub, err := d.AddPublication("aeron:udp?endpoint="+addr+"|session-id=4242|term-length=64k|mtu=1408|init-term-id=5|term-id=7|term-offset=64", 3)
	if err != nil {
		t.Fatal(err)
	}
	if pub.SessionID() != 4242 || pub.Position() != 2*65536+64 || pub.MaxMessageLength() != 8192 || pub.MaxPayloadLength() != 1376 {
		t.Fatalf("publication: session %d position %d max %d payload %d", pub.SessionID(), pub.Position(), pub.MaxMessageLength(), pub.MaxPayloadLength())
	}
	offerAll(t, pub, "hello")
	eventually(t, 5*time.Second, "message", func() bool { return c.count() == 1 })
	_, heads, avail, _ := c.snapshot()
	if len(avail) != 1 || avail[0].SessionID != 4242 || avail[0].JoinPosition != 2*65536+64 || heads[0].Position != 2*65536+64+64 || heads[0].TermID != 7 || heads[0].TermOffset != 64 {
		t.Fatalf("images %+v header %+v", avail, heads[0])
	}
	// The filtered-out session never connects.
	time.Sleep(300 * time.Millisecond)
	if other.IsConnected() || len(c.sub.Images()) != 1 {
		t.Fatalf("session filter let session 1 in: %+v", c.sub.Images())
	}
}

// TestTryClaim writes messages in place, aborts some (they become padding
// the subscriber never sees) and commits the others.
func TestTryClaim(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	for _, ch := range []string{"aeron:ipc?term-length=64k", "aeron:udp?endpoint=127.0.0.1:0"} {
		c := collect(t, d, ch, 12)
		pubCh := ch
		if c.sub.LocalAddr() != "ipc" {
			pubCh = "aeron:udp?endpoint=" + c.sub.LocalAddr() + "|term-length=64k"
		}
		pub, err := d.AddPublication(pubCh, 12)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "connected", pub.IsConnected)
		var claim BufferClaim
		if _, err := pub.TryClaim(pub.MaxPayloadLength()+1, &claim); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("oversized claim: %v", err)
		}
		want := 0
		for i := 0; i < 300; i++ { // 300 × ~1 KiB crosses several 64 KiB terms
			for {
				_, err := pub.TryClaim(1000, &claim)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrBackPressured) {
					t.Fatalf("%s claim %d: %v (pub %+v)", ch, i, err, pub.Stats())
				}
				time.Sleep(time.Millisecond)
			}
			buf := claim.Buffer()
			copy(buf, strings.Repeat(string(rune('a'+i%26)), len(buf)))
			if i%3 == 2 {
				claim.Abort()
				continue
			}
			claim.Commit()
			want++
		}
		if claim.Commit() == nil {
			t.Fatal("double commit accepted")
		}
		eventually(t, 10*time.Second, "claimed messages", func() bool { return c.count() == want })
		msgs, _, _, _ := c.snapshot()
		k := 0
		for i := 0; i < 300; i++ {
			if i%3 == 2 {
				continue
			}
			if msgs[k] != strings.Repeat(string(rune('a'+i%26)), 1000) {
				t.Fatalf("%s: message %d wrong", ch, k)
			}
			k++
		}
		pub.Close()
		c.close()
		c.sub.Close()
	}
}

// TestResubscribeResumes: closing a subscription and subscribing again to
// the same stream on the same endpoint (an actor restart) resumes the
// image where the old subscription stopped: nothing lost, nothing twice.
func TestResubscribeResumes(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	c1 := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0", 4)
	addr := c1.sub.LocalAddr()
	pub, _ := d.AddPublication("aeron:udp?endpoint="+addr, 4)
	msg := func(i int) string { return "m" + strings.Repeat("x", i%50) + string(rune('0'+i%10)) }
	for i := 0; i < 100; i++ {
		offerAll(t, pub, msg(i))
	}
	eventually(t, 5*time.Second, "first 100", func() bool { return c1.count() == 100 })
	c1.close()
	c1.sub.Close()
	for i := 100; i < 150; i++ { // offered while nobody is subscribed
		offerAll(t, pub, msg(i))
	}
	c2 := collect(t, d, "aeron:udp?endpoint="+addr, 4)
	for i := 150; i < 200; i++ {
		offerAll(t, pub, msg(i))
	}
	eventually(t, 5*time.Second, "the other 100", func() bool { return c2.count() == 100 })
	got, _, avail, _ := c2.snapshot()
	for k, m := range got {
		if m != msg(100+k) {
			t.Fatalf("message %d after resubscribe is %q, want %q", k, m, msg(100+k))
		}
	}
	if len(avail) != 1 || avail[0].SessionID != pub.SessionID() || !pub.IsConnected() {
		t.Fatalf("images %+v connected %v", avail, pub.IsConnected())
	}
}

// TestEmptyMessages: zero-length messages are valid (header-only frames).
func TestEmptyMessages(t *testing.T) {
	checkNoLeak(t)
	d := newTestDriver(t, testConfig())
	c := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0", 1)
	pub, _ := d.AddPublication("aeron:udp?endpoint="+c.sub.LocalAddr(), 1)
	offerAll(t, pub, "", "x", "")
	eventually(t, 5*time.Second, "three messages", func() bool { return c.count() == 3 })
	msgs, heads, _, _ := c.snapshot()
	if msgs[0] != "" || msgs[1] != "x" || msgs[2] != "" || heads[0].Position != 32 || heads[2].Position != 32+64+32 {
		t.Fatalf("messages %q headers %+v", msgs, heads)
	}
}
