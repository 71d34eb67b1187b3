package transport

import (
	"testing"
)

type senderRig struct {
	t    *testing.T
	log  *logBuffer
	app  *termAppender
	s    *sender
	sent []frame
	raw  [][]byte
}

func newSenderRig(t *testing.T) *senderRig {
	log := newLogBuffer(64*1024, 100)
	r := &senderRig{t: t, log: log, app: &termAppender{log: log, sessionID: 7, streamID: 8, maxPayload: 1408 - 32}}
	r.s = newSender(senderParams{sessionID: 7, streamID: 8, mtu: 1408, pubWindow: 32 * 1024,
		heartbeat: 100e6, connTimeout: 5e9, rtxLinger: 10e6, linger: 5e9, eos: true}, log, 0, 0)
	return r
}

func (r *senderRig) out(b []byte) {
	fs, why := parseDatagram(b)
	if why != dropNone {
		r.t.Fatalf("sender emitted invalid datagram (%v) %x", why, b)
	}
	if len(b) > 1408 {
		r.t.Fatalf("datagram of %d bytes above MTU", len(b))
	}
	r.sent = append(r.sent, fs...)
	r.raw = append(r.raw, b)
}

func (r *senderRig) work(now int64) []frame {
	r.sent = r.sent[:0]
	r.s.doWork(now, r.app.pos, r.out)
	return r.sent
}

func (r *senderRig) sm(now int64, flags uint8, pos int64, window int32, id int64) {
	var b [64]byte
	r.s.onControl(encodeSM(b[:], flags, 7, 8, r.log.termID(pos), r.log.termOffset(pos), window, id), now, r.out)
}

func TestSenderHandshakeAndFlowControl(t *testing.T) {
	r := newSenderRig(t)
	r.app.append(make([]byte, 100), 0)
	// SETUP at once and every 100 ms; no data, no heartbeat before an SM.
	if fs := r.work(0); len(fs) != 1 || fs[0].Type != typeSetup || fs[0].MTU != 1408 || fs[0].TermLength != 64*1024 {
		t.Fatalf("first work: %+v", fs)
	}
	if fs := r.work(50e6); len(fs) != 0 {
		t.Fatalf("SETUP resent early: %+v", fs)
	}
	if fs := r.work(100e6); len(fs) != 1 || fs[0].Type != typeSetup {
		t.Fatalf("no SETUP after 100 ms: %+v", fs)
	}
	if r.s.connected(100e6) || r.s.producerLimit(100e6) != 0 {
		t.Fatal("connected before any SM")
	}
	// A 0x80 SM neither connects nor grants window.
	r.sm(110e6, smFlagSetup, 0, 0, 1)
	if r.s.connected(110e6) {
		t.Fatal("0x80 SM counted for liveness")
	}
	// SM with a 1 KiB window: data up to the window, whole frames only.
	r.sent = r.sent[:0]
	r.sm(120e6, 0, 0, 1024, 1)
	if !r.s.connected(120e6) {
		t.Fatal("not connected after SM")
	}
	// Data goes out at once (and resets the idle timer, so no heartbeat).
	if fs := r.work(120e6); len(fs) != 1 || fs[0].Type != typeData || len(fs[0].Payload) != 100 {
		t.Fatalf("after SM: %+v", fs)
	}
	// No SETUP once connected.
	if fs := r.work(300e6); len(fs) != 1 || !fs[0].isHeartbeat() || fs[0].TermOffset != 160 {
		t.Fatalf("idle: %+v", fs)
	}
	// Window: 20 messages of 132 B (160 aligned) but only 1024 granted.
	for i := 0; i < 20; i++ {
		r.app.append(make([]byte, 100), 0)
	}
	r.raw = nil
	r.work(310e6)
	if r.s.pos != 1024-1024%160 || r.s.pos > 1024 {
		t.Fatalf("sender pos %d beyond window", r.s.pos)
	}
	if len(r.raw) != 1 || len(r.raw[0]) != 5*160 {
		t.Fatalf("batching: %d datagrams, first %d bytes", len(r.raw), len(r.raw[0]))
	}
	r.raw = nil
	// The limit never decreases.
	r.sm(320e6, 0, 0, 512, 1)
	if r.s.limit != 1024 {
		t.Fatalf("limit decreased to %d", r.s.limit)
	}
	// A status message past the sender position (nothing sent there:
	// forged) is ignored and counted: it neither lifts the limit nor
	// counts for liveness.
	invalid := r.s.c.invalid
	r.sm(325e6, 0, r.s.pos+32, 64*1024, 2)
	r.sm(325e6, 0, 1<<40, 64*1024, 2)
	if r.s.limit != 1024 || r.s.c.invalid != invalid+2 || len(r.s.receivers) != 1 {
		t.Fatalf("forged SM ahead of the sender: limit %d, invalid %d, receivers %d", r.s.limit, r.s.c.invalid-invalid, len(r.s.receivers))
	}
	r.sm(330e6, 0, r.s.pos, 64*1024, 1)
	r.work(330e6)
	if r.s.pos != r.app.pos {
		t.Fatalf("not drained: %d vs %d", r.s.pos, r.app.pos)
	}
	for _, b := range r.raw {
		if len(b) > 1408 || len(b)%32 != 0 {
			t.Fatalf("datagram of %d bytes", len(b))
		}
	}
	// 0x80 SM → SETUP again at once.
	r.sm(400e6, smFlagSetup, 0, 0, 1)
	if fs := r.work(400e6); len(fs) < 1 || fs[0].Type != typeSetup || fs[0].TermOffset != r.log.termOffset(r.s.pos) {
		t.Fatalf("no SETUP after 0x80 SM: %+v", fs)
	}
	// Liveness: no SM for 5 s → not connected, producer limit frozen.
	if r.s.connected(330e6+5e9) || r.s.producerLimit(330e6+5e9) != r.s.pos {
		t.Fatal("still connected after 5 s without SM")
	}
}

func TestSenderNAKRetransmitAndLinger(t *testing.T) {
	r := newSenderRig(t)
	r.work(0)
	r.sm(1e6, 0, 0, 32*1024, 1)
	for i := 0; i < 30; i++ {
		r.app.append(make([]byte, 100), int64(i))
	}
	r.work(2e6)
	nak := func(now int64, off, length int32) []frame {
		var b [64]byte
		r.sent = r.sent[:0]
		r.raw = nil
		r.s.onControl(encodeNAK(b[:], 7, 8, 100, off, length), now, r.out)
		return r.sent
	}
	fs := nak(3e6, 320, 320)
	if len(fs) != 2 || fs[0].TermOffset != 320 || fs[1].TermOffset != 480 || r.s.c.retransmits != 1 {
		t.Fatalf("retransmit: %+v", fs)
	}
	// Same range within the 10 ms linger: ignored.
	if fs := nak(5e6, 320, 320); len(fs) != 0 {
		t.Fatalf("retransmitted during linger: %+v", fs)
	}
	// Non-overlapping NAK replaces the slot.
	if fs := nak(6e6, 1600, 160); len(fs) != 1 || fs[0].TermOffset != 1600 {
		t.Fatalf("second NAK: %+v", fs)
	}
	// After the linger the first range can be resent.
	if fs := nak(20e6, 320, 320); len(fs) != 2 {
		t.Fatalf("after linger: %+v", fs)
	}
	// Out of range: beyond sender position, bad offset.
	if fs := nak(40e6, 30*160, 160); len(fs) != 0 {
		t.Fatalf("NAK beyond sender position answered: %+v", fs)
	}
	if fs := nak(60e6, 64*1024-16, 160); len(fs) != 0 {
		t.Fatalf("NAK with bad offset answered: %+v", fs)
	}
	// Retransmission across a large NAK length is split at the MTU.
	if fs := nak(80e6, 0, 30*160); len(fs) != 30 || len(r.raw) != 30*160/(1408/160*160)+1 {
		t.Fatalf("large NAK: %d frames in %d datagrams", len(fs), len(r.raw))
	}
}

func TestSenderEndOfStream(t *testing.T) {
	r := newSenderRig(t)
	r.work(0)
	r.sm(1e6, 0, 0, 32*1024, 1)
	r.app.append(make([]byte, 100), 0)
	r.s.close(2e6)
	fs := r.work(2e6)
	if len(fs) != 2 || fs[0].Type != typeData || !fs[1].isHeartbeat() || fs[1].Flags != 0xE0 || fs[1].TermOffset != 160 {
		t.Fatalf("close: %+v", fs)
	}
	if r.s.producerLimit(2e6) != r.s.pos {
		t.Fatal("offers allowed after close")
	}
	if fs := r.work(102e6); len(fs) != 1 || fs[0].Flags != 0xE0 {
		t.Fatalf("EOS heartbeat cadence: %+v", fs)
	}
	// Flushed (what a closing driver waits for) once the data is
	// acknowledged: the EOS went out already.
	if r.s.flushed() {
		t.Fatal("flushed before the data was acknowledged")
	}
	r.sm(120e6, 0, 160, 32*1024, 1)
	if !r.s.flushed() || r.s.finished {
		t.Fatalf("acknowledged: flushed %v finished %v", r.s.flushed(), r.s.finished)
	}
	// An SM with 0x40 removes the receiver and ends the linger.
	r.sm(150e6, smFlagEOS, 160, 32*1024, 1)
	r.work(151e6)
	if !r.s.finished {
		t.Fatal("linger did not end on EOS SM")
	}
	// Without an EOS SM the linger ends after 5 s.
	r2 := newSenderRig(t)
	r2.work(0)
	r2.sm(1e6, 0, 0, 32*1024, 1)
	r2.s.close(2e6)
	r2.work(2e6)
	for now := int64(100e6); now < 4e9; now += 100e6 {
		r2.sm(now, 0, 0, 32*1024, 1)
		r2.work(now)
	}
	if r2.s.finished {
		t.Fatal("finished before linger")
	}
	r2.sm(5.1e9, 0, 0, 32*1024, 1)
	r2.work(5.1e9)
	if !r2.s.finished {
		t.Fatal("linger did not end after 5 s")
	}
}
