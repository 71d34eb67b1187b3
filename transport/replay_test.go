package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

const capturePort = 40123

func isToReceiver(d capDatagram) bool { return netip.MustParseAddrPort(d.Dst).Port() == capturePort }

func captureRecvParams() recvParams {
	return recvParams{
		window: 128 * 1024, nakDelay: 100_000, nakRetry: 10_000_000, smTimeout: 200_000_000,
		liveness: 10_000_000_000, connLive: 5_000_000_000, setupHold: 1_000_000_000, drainHold: 1_000_000_000,
	}
}

type sentCtl struct {
	f  frame
	to netip.AddrPort
}

// replayReceiver feeds the non-dropped sender→receiver datagrams of a
// capture into a receive endpoint subscribed to stream 1001, consuming the
// image as it goes, and returns the delivered messages and the control
// frames the endpoint sent.
func replayReceiver(t *testing.T, name string) ([][]byte, []sentCtl, *recvEndpoint) {
	ep := newRecvEndpoint(42)
	ep.subscribe(&streamSub{streamID: 1001, p: captureRecvParams()})
	var ctl []sentCtl
	out := func(b []byte, to netip.AddrPort) {
		fs, r := parseDatagram(b)
		if r != dropNone || len(fs) != 1 {
			t.Fatalf("endpoint sent an invalid datagram %x", b)
		}
		ctl = append(ctl, sentCtl{fs[0], to})
	}
	var msgs [][]byte
	type reader struct {
		pos int64
		asm assembler
	}
	readers := map[*image]*reader{}
	consume := func() {
		for _, img := range ep.images {
			r := readers[img]
			if r == nil {
				r = &reader{pos: img.joinPos}
				readers[img] = r
			}
			readLog(img.log, &r.pos, img.rebuild.Load(), 1<<30, &r.asm, img.sessionID, img.streamID, func(m []byte, h Header) {
				msgs = append(msgs, bytes.Clone(m))
			})
			img.subPos.Store(r.pos)
		}
	}
	for _, d := range loadCapture(t, name) {
		now := d.TUs * 1000
		ep.doWork(now, out)
		if !isToReceiver(d) && d.Frames[0].Type == "SM" && d.Frames[0].Flags == 0 {
			// The captured sender followed aeronmd's status messages, not
			// ours, whose timing differs: widen our over-run bound to what
			// aeronmd granted so data it accepted is not refused here.
			f := d.Frames[0]
			if img := ep.images[imageKey{f.SessionID, f.StreamID}]; img != nil {
				if p, ok := img.log.position(f.ConsTermID, f.ConsOffset); ok && p > img.lastSMPos {
					img.lastSMPos = p
				}
			}
		}
		if !isToReceiver(d) || d.Dropped {
			continue
		}
		ep.onDatagram(d.raw, netip.MustParseAddrPort(d.Src), now, out)
		consume()
		ep.doWork(now, out)
	}
	return msgs, ctl, ep
}

func hello(n int) []byte { return []byte(fmt.Sprintf("Hello World! %d", n)) }

func TestReplayReceiverBasic(t *testing.T) {
	for _, c := range []struct {
		file string
		nums []int
	}{
		{"a1_clean_basic.jsonl", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"c1_late_subscriber.jsonl", []int{3, 4, 5, 6, 7}},
		{"c2_subscriber_restart.jsonl", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"c3_subscriber_restart_long_gap.jsonl", []int{1, 2, 3, 4, 5, 11}},
	} {
		msgs, ctl, ep := replayReceiver(t, c.file)
		if len(msgs) != len(c.nums) {
			t.Fatalf("%s: %d messages, want %d", c.file, len(msgs), len(c.nums))
		}
		for i, n := range c.nums {
			if !bytes.Equal(msgs[i], hello(n)) {
				t.Fatalf("%s: message %d = %q", c.file, i, msgs[i])
			}
		}
		// The first control frame is the SM answering the SETUP, at the
		// SETUP position with the 128 KiB window, sent to the source.
		caps := loadCapture(t, c.file)
		if len(ctl) == 0 || ctl[0].f.Type != typeSM || ctl[0].f.Flags != 0 || ctl[0].f.ReceiverWindow != 131072 ||
			ctl[0].f.ReceiverID != 42 || ctl[0].to.String() != caps[0].Src {
			t.Fatalf("%s: first control frame %+v", c.file, ctl)
		}
		var first *capFrame
		for _, d := range caps {
			if !isToReceiver(d) && d.Frames[0].Type == "SM" && d.Frames[0].Flags == 0 {
				first = &d.Frames[0]
				break
			}
		}
		if ctl[0].f.TermID != first.ConsTermID || ctl[0].f.ConsumptionOffset != first.ConsOffset || ctl[0].f.SessionID != first.SessionID {
			t.Fatalf("%s: first SM %+v, aeronmd sent %+v", c.file, ctl[0].f, first)
		}
		// EOS: the image drained and sent SMs with 0x40 (a1/c1/c2/c3 end
		// with 0xE0 heartbeats).
		eosSMs := 0
		for _, s := range ctl {
			if s.f.Type == typeSM && s.f.Flags == smFlagEOS {
				eosSMs++
			}
		}
		if eosSMs == 0 {
			t.Fatalf("%s: no 0x40 SM after end of stream", c.file)
		}
		if len(ep.c.invalid) > 0 && ep.c.invalid != ([numDropReasons]uint64{}) {
			t.Fatalf("%s: invalid datagrams %v", c.file, ep.c.invalid)
		}
	}
}

func TestReplayReceiverFragmented(t *testing.T) {
	msgs, _, _ := replayReceiver(t, "a2_clean_fragmented.jsonl")
	want := []int{14, 14, 8, 8, 14, 100, 100, 1376, 14, 1377, 3000, 3000, 14, 10000, 14, 14, 14}
	var got []int
	for _, m := range msgs {
		got = append(got, len(m))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("message sizes %v\nwant %v", got, want)
	}
	msgs, _, _ = replayReceiver(t, "a3_clean_mtu8192.jsonl")
	got = got[:0]
	for _, m := range msgs {
		got = append(got, len(m))
	}
	if fmt.Sprint(got) != "[8159 8159 8161 8159 20000 8159]" {
		t.Fatalf("a3 sizes %v", got)
	}
}

// counterMessages checks streaming_publisher messages: n bytes, u64 LE
// counter that restarts at 0 for each client process.
func counterMessages(t *testing.T, name string, msgs [][]byte, size int) int {
	count := 0
	var next uint64
	for _, m := range msgs {
		if len(m) != size {
			continue
		}
		c := binary.LittleEndian.Uint64(m)
		if c != next && c != 0 {
			t.Fatalf("%s: counter %d, want %d or 0", name, c, next)
		}
		next = c + 1
		count++
	}
	return count
}

func TestReplayReceiverTermRolloverAndLoss(t *testing.T) {
	msgs, _, _ := replayReceiver(t, "a4_clean_term_rollover_pad.jsonl")
	if len(msgs) != 200 || counterMessages(t, "a4", msgs, 1000) != 200 {
		t.Fatalf("a4: %d messages", len(msgs))
	}
	for i, m := range msgs {
		if binary.LittleEndian.Uint64(m) != uint64(i) {
			t.Fatalf("a4 message %d has counter %d", i, binary.LittleEndian.Uint64(m))
		}
	}
	for _, c := range []struct {
		file  string
		total int
		size  int
		bulk  int
	}{
		{"b1_loss_5pct.jsonl", 2006, 100, 2000},
		{"b2_loss_5pct_term64k.jsonl", 329, 1000, 320},
	} {
		msgs, ctl, _ := replayReceiver(t, c.file)
		if len(msgs) != c.total {
			t.Fatalf("%s: %d messages, want %d", c.file, len(msgs), c.total)
		}
		if n := counterMessages(t, c.file, msgs, c.size); n != c.bulk {
			t.Fatalf("%s: %d counter messages, want %d", c.file, n, c.bulk)
		}
		// Every NAK aeronmd sent for this loss, we sent too (same gap).
		ours := map[[3]int32]bool{}
		for _, s := range ctl {
			if s.f.Type == typeNAK {
				ours[[3]int32{s.f.TermID, s.f.TermOffset, s.f.Length}] = true
			}
		}
		for _, d := range loadCapture(t, c.file) {
			if f := d.Frames[0]; f.Type == "NAK" && !ours[[3]int32{f.TermID, f.TermOffset, f.Length}] {
				t.Errorf("%s #%d: aeronmd NAKed %d/%d len %d, we did not (ours: %v)", c.file, d.I, f.TermID, f.TermOffset, f.Length, ours)
			}
		}
	}
}

// TestReplaySenderLayout offers the messages of the clean captures to our
// sender core (same session, stream, initial term id, MTU and term length,
// fed with aeronmd's status messages in capture order) and checks that it
// emits the same SETUP and byte-identical data datagrams: frame layout,
// fragmentation, alignment padding, batching and the PAD at term end.
func TestReplaySenderLayout(t *testing.T) {
	for _, name := range []string{"a1_clean_basic.jsonl", "a2_clean_fragmented.jsonl", "a3_clean_mtu8192.jsonl", "a4_clean_term_rollover_pad.jsonl"} {
		msgs, _, _ := replayReceiver(t, name)
		caps := loadCapture(t, name)
		su := caps[0].Frames[0]
		if su.Type != "SETUP" {
			t.Fatalf("%s: no SETUP first", name)
		}
		log := newLogBuffer(su.TermLength, su.InitialTermID)
		app := &termAppender{log: log, sessionID: su.SessionID, streamID: su.StreamID, maxPayload: int(su.MTU) - hdrLen}
		start, _ := log.position(su.ActiveTermID, su.TermOffset)
		app.pos = start
		now0 := caps[0].TUs * 1000
		snd := newSender(senderParams{
			sessionID: su.SessionID, streamID: su.StreamID, mtu: int(su.MTU), pubWindow: int64(su.TermLength / 2),
			heartbeat: 100e6, connTimeout: 5e9, rtxLinger: 10e6, linger: 5e9, eos: true,
		}, log, start, now0)
		var data [][]byte
		setups := 0
		out := func(b []byte) {
			switch {
			case getType(b) == typeSetup:
				if setups == 0 && !bytes.Equal(b, caps[0].raw) {
					t.Fatalf("%s: SETUP %x, aeronmd sent %x", name, b, caps[0].raw)
				}
				setups++
			case len(b) == heartbeatLen && getFrameLength(b) == 0:
			default:
				data = append(data, bytes.Clone(b))
			}
		}
		snd.doWork(now0, app.pos, out)
		next := 0
		compared := 0
		for _, d := range caps[1:] {
			now := d.TUs * 1000
			if !isToReceiver(d) {
				snd.onControl(d.raw, now, out)
				continue
			}
			f := d.Frames[0]
			if f.Type == "SETUP" || f.Heartbeat {
				continue
			}
			pos, _ := log.position(f.TermID, f.TermOffset)
			end := pos
			for _, fr := range d.Frames {
				end += int64(align32(int(fr.FrameLength)))
			}
			for app.pos < end && next < len(msgs) {
				if app.required(len(msgs[next])) > snd.producerLimit(now) {
					t.Fatalf("%s #%d: our publication would be back pressured", name, d.I)
				}
				app.append(msgs[next], 0)
				next++
			}
			snd.doWork(now, app.pos, out)
			if len(data) == 0 {
				t.Fatalf("%s #%d: our sender sent nothing (pos %d limit %d producer %d)", name, d.I, snd.pos, snd.limit, app.pos)
			}
			if !bytes.Equal(data[0], d.raw) {
				t.Fatalf("%s #%d: our datagram\n%x\naeronmd\n%x", name, d.I, data[0], d.raw)
			}
			data = data[1:]
			compared++
		}
		if next != len(msgs) || len(data) != 0 || compared == 0 {
			t.Fatalf("%s: offered %d/%d, %d datagrams left over", name, next, len(msgs), len(data))
		}
	}
}

// TestReplayCaptureOverSockets sends aeronmd's captured sender datagrams
// (the non-dropped ones, byte for byte) from a plain socket on 127.0.0.1 to
// a real Subscription and checks the messages, end to end through the
// runner.
func TestReplayCaptureOverSockets(t *testing.T) {
	checkNoLeak(t)
	for _, c := range []struct {
		file string
		n    int
	}{{"a2_clean_fragmented.jsonl", 17}, {"b1_loss_5pct.jsonl", 2006}} {
		want, _, _ := replayReceiver(t, c.file)
		if len(want) != c.n {
			t.Fatalf("%s: core replay gave %d messages", c.file, len(want))
		}
		d := newTestDriver(t, testConfig())
		col := collect(t, d, "aeron:udp?endpoint=127.0.0.1:0", 1001)
		raw, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(col.sub.LocalAddr())))
		if err != nil {
			t.Fatal(err)
		}
		for i, dg := range loadCapture(t, c.file) {
			if !isToReceiver(dg) || dg.Dropped {
				continue
			}
			if _, err := raw.Write(dg.raw); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				eventually(t, 5*time.Second, "the captured SETUP", func() bool { return col.sub.Stats().SetupsReceived > 0 })
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // keep well inside the socket buffer
			}
		}
		eventually(t, 10*time.Second, c.file+" messages", func() bool { return col.count() >= c.n })
		got, _, _, _ := col.snapshot()
		if len(got) != c.n {
			t.Fatalf("%s: %d messages, want %d", c.file, len(got), c.n)
		}
		for i := range got {
			if got[i] != string(want[i]) {
				t.Fatalf("%s: message %d differs", c.file, i)
			}
		}
		raw.Close()
		col.close()
		d.Close()
	}
}
