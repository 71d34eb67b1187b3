package transport

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzReceiverDatagrams feeds arbitrary datagram sequences (each chunk
// prefixed by a 2-byte little-endian length) to a receive endpoint whose
// stream has an image (64 KiB terms) and consumes the image as it goes.
// Nothing may panic; positions must stay ordered.
func FuzzReceiverDatagrams(f *testing.F) {
	var seed []byte
	for i, d := range loadCapture(f, "a4_clean_term_rollover_pad.jsonl") {
		if !isToReceiver(d) || len(d.raw) > 2000 {
			continue
		}
		seed = binary.LittleEndian.AppendUint16(seed, uint16(len(d.raw)))
		seed = append(seed, d.raw...)
		if i%4 == 3 {
			f.Add(seed)
			seed = nil
		}
	}
	f.Add(seed)
	src := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, in []byte) {
		ep := newRecvEndpoint(5)
		ep.subscribe(&streamSub{streamID: 1001, p: captureRecvParams()})
		var setup [64]byte
		// Same session as a4 so the seeds' data lands in the image.
		ep.onDatagram(encodeSetup(setup[:], 0, -1395944130, 1001, 1805576301, 1805576301, 64*1024, 1408, 0), src, 0, func([]byte, netip.AddrPort) {})
		img := ep.images[imageKey{-1395944130, 1001}]
		if img == nil {
			t.Fatal("no image from a valid SETUP")
		}
		pos := img.joinPos
		var asm assembler
		now := int64(1000)
		out := func(b []byte, _ netip.AddrPort) {
			if _, r := parseDatagram(b); r != dropNone {
				t.Fatalf("endpoint sent an invalid frame %x", b)
			}
		}
		for len(in) >= 2 {
			n := int(binary.LittleEndian.Uint16(in))
			in = in[2:]
			n = min(n, len(in))
			ep.onDatagram(in[:n], src, now, out)
			in = in[n:]
			now += 50_000
			ep.doWork(now, out)
			if img.state == imgGone {
				return
			}
			if img.rebuildPos > img.hwm && img.hwm >= img.joinPos {
				t.Fatalf("rebuild %d beyond hwm %d", img.rebuildPos, img.hwm)
			}
			readLog(img.log, &pos, img.rebuild.Load(), 1<<20, &asm, img.sessionID, img.streamID, func([]byte, Header) {})
			if pos > img.rebuild.Load() {
				t.Fatalf("read past rebuild: %d > %d", pos, img.rebuild.Load())
			}
			img.subPos.Store(pos)
		}
	})
}

func TestReceiverUnknownSessionAndHold(t *testing.T) {
	ep := newRecvEndpoint(77)
	ep.subscribe(&streamSub{streamID: 10, p: captureRecvParams()})
	var sent []frame
	out := func(b []byte, to netip.AddrPort) {
		fs, _ := parseDatagram(b)
		sent = append(sent, fs...)
	}
	src := netip.MustParseAddrPort("127.0.0.1:7")
	var hb [32]byte
	encodeHeartbeat(hb[:], flagsUnfrag, 320, 99, 10, 5)
	ep.onDatagram(hb[:], src, 0, out)
	if len(sent) != 1 || sent[0].Type != typeSM || sent[0].Flags != smFlagSetup || sent[0].ReceiverID != 77 || sent[0].SessionID != 99 || sent[0].ReceiverWindow != 0 {
		t.Fatalf("unknown session: %+v", sent)
	}
	ep.onDatagram(hb[:], src, 500e6, out)
	if len(sent) != 1 {
		t.Fatal("second 0x80 SM within the 1 s hold")
	}
	ep.onDatagram(hb[:], src, 1.1e9, out)
	if len(sent) != 2 {
		t.Fatal("no 0x80 SM after the hold")
	}
	// EOS heartbeats from unknown sessions are ignored.
	encodeHeartbeat(hb[:], flagsUnfrag|flagEOS, 320, 98, 10, 5)
	ep.onDatagram(hb[:], src, 2e9, out)
	// Unsubscribed streams: ignored entirely, SETUP included.
	var su [64]byte
	ep.onDatagram(encodeSetup(su[:], 0, 1, 11, 0, 0, 64*1024, 1408, 0), src, 2e9, out)
	if len(sent) != 2 || ep.c.unknownStream != 1 {
		t.Fatalf("ignored frames answered: %+v", sent)
	}
	// Invalid SETUPs (bad term length, MTU above the window) make no image.
	ep.onDatagram(encodeSetup(su[:], 0, 99, 10, 5, 5, 100000, 1408, 0), src, 2e9, out)
	ep.onDatagram(encodeSetup(su[:], 0, 99, 10, 5, 5, 64*1024, 65504&^31, 0), src, 2e9, out)
	big := captureRecvParams()
	big.maxTermLen = 1 << 20
	ep.streams[10].p = big
	ep.onDatagram(encodeSetup(su[:], 0, 99, 10, 5, 5, 1<<30, 1408, 0), src, 2e9, out)
	if len(ep.images) != 0 || ep.c.rejectedSetup != 3 {
		t.Fatalf("invalid SETUP accepted: %d images", len(ep.images))
	}
	// A valid SETUP: image at the SETUP position, SM at once.
	ep.onDatagram(encodeSetup(su[:], 320, 99, 10, 5, 5, 64*1024, 1408, 0), src, 2e9, out)
	if len(ep.images) != 1 || len(sent) != 3 || sent[2].Type != typeSM || sent[2].Flags != 0 || sent[2].ConsumptionOffset != 320 || sent[2].ReceiverWindow != 32*1024 {
		t.Fatalf("SETUP: %+v", sent)
	}
	// Over-run: data beyond lastSM + T/2 is dropped.
	data := make([]byte, 64)
	putDataHeader(data, 40, flagsUnfrag, typeData, 320+40000, 99, 10, 5, 0)
	ep.onDatagram(data, src, 2e9, out)
	img := ep.images[imageKey{99, 10}]
	if img.c.overruns != 1 || img.hwm != 320 {
		t.Fatalf("over-run accepted: %+v hwm %d", img.c, img.hwm)
	}
	// Gap: data at 384 leaves 320..384 missing → NAK after the delay.
	putDataHeader(data, 40, flagsUnfrag, typeData, 384, 99, 10, 5, 0)
	ep.onDatagram(data, src, 2e9, out)
	ep.doWork(2e9+50_000, out)
	if sent[len(sent)-1].Type == typeNAK {
		t.Fatal("NAK before the delay")
	}
	ep.doWork(2e9+100_000, out)
	if f := sent[len(sent)-1]; f.Type != typeNAK || f.TermOffset != 320 || f.Length != 64 || f.TermID != 5 {
		t.Fatalf("NAK: %+v", f)
	}
	naks := img.c.naks
	ep.doWork(2e9+5_000_000, out)
	if img.c.naks != naks {
		t.Fatal("NAK retried before 10 ms")
	}
	ep.doWork(2e9+10_200_000, out)
	if img.c.naks != naks+1 {
		t.Fatal("NAK not retried after 10 ms")
	}
	// The image cap refuses a second session when its first frame comes
	// (the first one is live, not silent).
	ep.streams[10].p.maxImages = 1
	ep.onDatagram(encodeSetup(su[:], 0, 100, 10, 5, 5, 64*1024, 1408, 0), src, 2.5e9, out)
	encodeHeartbeat(hb[:], flagsUnfrag, 0, 100, 10, 5)
	ep.onDatagram(hb[:], src, 2.5e9, out)
	if len(ep.images) != 1 || ep.c.rejectedSetup != 4 {
		t.Fatalf("image cap ignored: %d images", len(ep.images))
	}
}

func TestChannelURIs(t *testing.T) {
	good := []string{
		"aeron:udp?endpoint=127.0.0.1:40123",
		"aeron:udp?endpoint=localhost:1|mtu=8k|term-length=64k|rcv-wnd=128k|linger=5s|nak-delay=100us|so-rcvbuf=2m|so-sndbuf=1m|eos=false|session-id=-5|alias=x|tags=1,2",
		"aeron:udp?endpoint=[::1]:9|init-term-id=5|term-id=7|term-offset=64|term-length=64k",
		"aeron:ipc",
		"aeron:ipc?term-length=1m",
	}
	for _, u := range good {
		if _, err := parseChannel(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	c, _ := parseChannel(good[1])
	if c.mtu != 8192 || c.termLength != 65536 || c.rcvWnd != 131072 || c.linger.Seconds() != 5 || c.nakDelay.Microseconds() != 100 || c.eos || c.sessionID != -5 || !c.hasSessionID {
		t.Fatalf("parsed %+v", c)
	}
	bad := map[string]string{
		"aeron:udp?endpoint=127.0.0.1:1|bogus=1":         "bogus",
		"aeron:udp?endpoint=127.0.0.1:1|mtu=1000":        "mtu",
		"aeron:udp?endpoint=127.0.0.1:1|term-length=3m":  "term-length",
		"aeron:udp?endpoint=127.0.0.1":                   "endpoint",
		"aeron:udp?mtu=1408":                             "endpoint",
		"aeron:udp?endpoint=127.0.0.1:1|linger=soon":     "linger",
		"aeron:udp?endpoint=127.0.0.1:1|term-id=5":       "init-term-id",
		"aeron:udp?endpoint=127.0.0.1:1|session-id=x":    "session-id",
		"aeron:udp?endpoint=127.0.0.1:1|mtu=":            "mtu",
		"aeron:udp?endpoint=127.0.0.1:1|reliable=false":  "reliable",
		"aeron:udp?endpoint=1.2.3.4:1|control=1.2.3.4:2": "control",
		"aeron:ipc?endpoint=127.0.0.1:1":                 "endpoint",
	}
	for u, key := range bad {
		_, err := parseChannel(u)
		if !errors.Is(err, ErrBadChannel) || !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Errorf("%s: error %v does not name %q", u, err, key)
		}
	}
	for _, u := range []string{"", "udp://x", "aeron:tcp?endpoint=1:1", "aeron:udp?endpoint=127.0.0.1:1|mtu=1408|mtu=1408"} {
		if _, err := parseChannel(u); !errors.Is(err, ErrBadChannel) {
			t.Errorf("%q accepted", u)
		}
	}
	d := newTestDriver(t, testConfig())
	if _, err := d.AddPublication("aeron:udp?endpoint=127.0.0.1:1|mtu=33", 1); !errors.Is(err, ErrBadChannel) || !strings.Contains(err.Error(), "mtu") {
		t.Fatalf("AddPublication bad mtu: %v", err)
	}
	if _, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0|rcv-wnd=x", 1); !errors.Is(err, ErrBadChannel) || !strings.Contains(err.Error(), "rcv-wnd") {
		t.Fatalf("AddSubscription bad rcv-wnd: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.TermLength = 100000 },
		func(c *Config) { c.MTU = 1000 },
		func(c *Config) { c.ReceiverWindow = 100 },
		func(c *Config) { c.NakDelay = 0 },
		func(c *Config) { c.PublicationWindow = c.TermLength },
	} {
		c := DefaultConfig()
		mod(&c)
		if _, err := NewDriver(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("config accepted: %v", err)
		}
	}
	d, err := NewDriver(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	if _, err := d.AddPublication("aeron:ipc", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

func TestOfferResults(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	d := newTestDriver(t, cfg)
	sub, _ := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 1)
	pub, _ := d.AddPublication("aeron:udp?endpoint="+sub.LocalAddr()+"|term-length=64k", 1)
	if pos, err := pub.Offer([]byte("x")); !errors.Is(err, ErrNotConnected) || pos != NotConnected {
		// It may already be connected on a fast machine; then it succeeds.
		if err != nil {
			t.Fatalf("first offer: %d %v", pos, err)
		}
	}
	eventually(t, 10*time.Second, "connected", pub.IsConnected)
	if _, err := pub.Offer(make([]byte, pub.MaxMessageLength()+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	// Nobody polls: the publication window (T/2) fills up.
	bp := false
	for i := 0; i < 1000 && !bp; i++ {
		_, err := pub.Offer(make([]byte, 1000))
		bp = errors.Is(err, ErrBackPressured)
	}
	if !bp || pub.Stats().BackPressureEvents == 0 {
		t.Fatal("never back pressured")
	}
	allocs := testing.AllocsPerRun(100, func() { pub.Offer(make([]byte, 0, 8)[:8]) })
	if allocs != 0 {
		t.Fatalf("back-pressured Offer allocates %v", allocs)
	}
	pub.Close()
	if pos, err := pub.Offer([]byte("x")); !errors.Is(err, ErrClosed) || pos != PublicationClosed {
		t.Fatalf("after close: %d %v", pos, err)
	}
}

// TestReceiverSetupLimitsAndEviction: a SETUP makes a pending image (no
// memory, no event) and the oldest pending ones make room for new ones; on
// its first frame an image must fit the per-source, per-endpoint and
// memory limits, evicting a silent, consumed image if need be, else it
// goes. The budget is charged per live image and credited when it goes.
func TestReceiverSetupLimitsAndEviction(t *testing.T) {
	const T = 64 * 1024
	p := captureRecvParams()
	p.maxPerSource, p.maxImages = 2, 3
	p.budget = newMemBudget(4 * 3 * T)
	ep := newRecvEndpoint(1)
	ep.subscribe(&streamSub{streamID: 10, p: p})
	out := func([]byte, netip.AddrPort) {}
	var su [64]byte
	setup := func(session int32, from string, now int64) {
		ep.onDatagram(encodeSetup(su[:], 0, session, 10, 5, 5, T, 1408, 0), netip.MustParseAddrPort(from), now, out)
	}
	heartbeat := func(session int32, from string, now int64) {
		var hb [32]byte
		ep.onDatagram(encodeHeartbeat(hb[:], flagsUnfrag, 0, session, 10, 5), netip.MustParseAddrPort(from), now, out)
	}
	check := func(live, pending []int32) {
		t.Helper()
		if len(ep.images) != len(live)+len(pending) {
			t.Fatalf("%d images, want live %v pending %v", len(ep.images), live, pending)
		}
		for i, s := range append(append([]int32(nil), live...), pending...) {
			img := ep.images[imageKey{s, 10}]
			if img == nil || img.pending != (i >= len(live)) || (img.log.buf == nil) != img.pending {
				t.Fatalf("session %d: %+v, want live %v pending %v", s, img, live, pending)
			}
		}
		if got := p.budget.used.Load(); got != int64(len(live))*3*T {
			t.Fatalf("budget used %d, want %d", got, len(live)*3*T)
		}
	}
	// A flood of SETUPs: at most maxImages pending, the oldest go first,
	// and an evicted session's SETUPs are ignored for the hold.
	for s := int32(100); s < 110; s++ {
		setup(s, "10.0.0.9:1", int64(s))
	}
	check(nil, []int32{107, 108, 109})
	if ep.c.evicted != 7 || len(ep.events) != 0 {
		t.Fatalf("pending flood: %+v, %d events", ep.c, len(ep.events))
	}
	setup(100, "10.0.0.9:1", 200)
	check(nil, []int32{107, 108, 109})
	if ep.c.rejectedSetup != 1 {
		t.Fatalf("held-off session: %+v", ep.c)
	}
	// A real publisher: SETUP then a heartbeat makes it live.
	setup(1, "10.0.0.1:1", 1000)
	heartbeat(1, "10.0.0.1:1", 1000)
	check([]int32{1}, []int32{108, 109})
	if len(ep.events) != 1 || !ep.events[0].available || ep.events[0].img.sessionID != 1 {
		t.Fatalf("events %+v", ep.events)
	}
	// Per source address (any port): the third live image from 10.0.0.1
	// is refused while the first two are active.
	setup(2, "10.0.0.1:2", 1000)
	heartbeat(2, "10.0.0.1:2", 1000)
	setup(3, "10.0.0.1:3", 1000)
	heartbeat(3, "10.0.0.1:3", 0.5e9)
	check([]int32{1, 2}, []int32{108, 109})
	if ep.c.rejectedSetup != 2 || ep.c.evicted != 9 {
		t.Fatalf("per-source limit: %+v", ep.c)
	}
	// ... and admitted once one of them has been silent for the hold,
	// which is evicted (the subscriber had consumed its data).
	heartbeat(2, "10.0.0.1:2", 0.9e9)
	setup(3, "10.0.0.1:3", 1.2e9) // held off until 1.5e9
	setup(3, "10.0.0.1:3", 1.6e9)
	heartbeat(3, "10.0.0.1:3", 1.6e9)
	check([]int32{2, 3}, []int32{108, 109})
	if ev := ep.events[len(ep.events)-2]; ev.available || ev.img.sessionID != 1 {
		t.Fatalf("eviction event %+v", ev)
	}
	// Per endpoint: a third live image fits, a fourth must evict.
	setup(4, "10.0.0.2:1", 1.6e9)
	heartbeat(4, "10.0.0.2:1", 1.6e9)
	check([]int32{2, 3, 4}, []int32{108, 109})
	setup(5, "10.0.0.3:1", 1.7e9)
	heartbeat(5, "10.0.0.3:1", 1.7e9) // nobody silent for 1 s
	check([]int32{2, 3, 4}, []int32{108, 109})
	// A subscriber behind on an image protects it from eviction.
	ep.images[imageKey{2, 10}].rebuildPos = 64
	setup(5, "10.0.0.3:1", 2.8e9)
	heartbeat(5, "10.0.0.3:1", 2.8e9) // 2 is silent but unconsumed: 3 goes
	check([]int32{2, 4, 5}, []int32{108, 109})
	ep.images[imageKey{2, 10}].rebuildPos = 0
	// The budget is shared: a second endpoint cannot evict the first's
	// images, and gets room when one of them goes.
	ep2 := newRecvEndpoint(2)
	p2 := p
	p2.maxPerSource, p2.maxImages = 0, 0
	ep2.subscribe(&streamSub{streamID: 10, p: p2})
	for _, s := range []int32{20, 21} {
		ep2.onDatagram(encodeSetup(su[:], 0, s, 10, 5, 5, T, 1408, 0), netip.MustParseAddrPort("10.0.0.9:1"), 2.8e9, out)
		var hb [32]byte
		ep2.onDatagram(encodeHeartbeat(hb[:], flagsUnfrag, 0, s, 10, 5), netip.MustParseAddrPort("10.0.0.9:1"), 2.8e9, out)
	}
	if len(ep2.images) != 1 || p.budget.used.Load() != 4*3*T {
		t.Fatalf("shared budget: %d images, %+v, used %d", len(ep2.images), ep2.c, p.budget.used.Load())
	}
	ep.doWork(20e9, out) // liveness: every image of ep drains, then goes
	ep.doWork(30e9, out)
	if len(ep.images) != 0 || p.budget.used.Load() != 3*T {
		t.Fatalf("after expiry: %d images, used %d", len(ep.images), p.budget.used.Load())
	}
	ep2.onDatagram(encodeSetup(su[:], 0, 22, 10, 5, 5, T, 1408, 0), netip.MustParseAddrPort("10.0.0.9:1"), 30e9, out)
	var hb [32]byte
	ep2.onDatagram(encodeHeartbeat(hb[:], flagsUnfrag, 0, 22, 10, 5), netip.MustParseAddrPort("10.0.0.9:1"), 30e9, out)
	if len(ep2.images) != 2 || p.budget.used.Load() != 2*3*T {
		t.Fatal("budget not credited when images went")
	}
	// A term whose log exceeds the whole budget is refused outright.
	ep2.onDatagram(encodeSetup(su[:], 0, 23, 10, 5, 5, 16*T, 1408, 0), netip.MustParseAddrPort("10.0.0.9:1"), 30e9, out)
	if len(ep2.images) != 2 {
		t.Fatal("oversized term accepted")
	}
}

// TestReceiverPendingImageAnswersSetupsOnly: a session that sent only
// SETUPs gets one SM per SETUP and nothing from the timers, so forged
// SETUPs cannot turn the receiver into an SM reflector; its first frame
// makes it live and the SMs run as usual.
func TestReceiverPendingImageAnswersSetupsOnly(t *testing.T) {
	ep := newRecvEndpoint(1)
	ep.subscribe(&streamSub{streamID: 10, p: captureRecvParams()})
	sms := 0
	out := func(b []byte, to netip.AddrPort) {
		if getType(b) == typeSM {
			sms++
		}
	}
	src := netip.MustParseAddrPort("10.0.0.1:1")
	var su [64]byte
	ep.onDatagram(encodeSetup(su[:], 0, 7, 10, 5, 5, 64*1024, 1408, 0), src, 0, out)
	for now := int64(0); now < 5e9; now += 100e6 {
		ep.doWork(now, out)
	}
	if sms != 1 {
		t.Fatalf("%d SMs for one SETUP", sms)
	}
	ep.onDatagram(encodeSetup(su[:], 0, 7, 10, 5, 5, 64*1024, 1408, 0), src, 5e9, out)
	ep.onDatagram(encodeSetup(su[:], 0, 7, 10, 5, 5, 64*1024, 1408, 0), src, 5.1e9, out)
	if sms != 3 {
		t.Fatalf("%d SMs for three SETUPs", sms)
	}
	var hb [32]byte
	ep.onDatagram(encodeHeartbeat(hb[:], flagsUnfrag, 0, 7, 10, 5), src, 5.1e9, out)
	if img := ep.images[imageKey{7, 10}]; img == nil || img.pending {
		t.Fatal("not live after a heartbeat")
	}
	ep.doWork(5.4e9, out)
	if sms != 4 {
		t.Fatalf("live image: %d SMs, want the timer's", sms)
	}
}
