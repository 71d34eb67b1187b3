package transport

import (
	"bytes"
	"fmt"
	"testing"
)

func TestPositionMath(t *testing.T) {
	l := newLogBuffer(64*1024, -5)
	for _, c := range []struct {
		termID, off int32
		pos         int64
	}{{-5, 0, 0}, {-5, 64, 64}, {-4, 0, 65536}, {-2, 32, 3*65536 + 32}} {
		p, ok := l.position(c.termID, c.off)
		if !ok || p != c.pos {
			t.Fatalf("position(%d,%d) = %d,%v want %d", c.termID, c.off, p, ok, c.pos)
		}
		if l.termID(p) != c.termID || l.termOffset(p) != c.off {
			t.Fatalf("inverse of %d: %d,%d", p, l.termID(p), l.termOffset(p))
		}
	}
	if _, ok := l.position(-6, 0); ok {
		t.Fatal("term before initial accepted")
	}
	// Wrapping term ids.
	w := newLogBuffer(64*1024, 2147483647)
	if p, ok := w.position(-2147483648, 32); !ok || p != 65536+32 {
		t.Fatalf("wrapped: %d %v", p, ok)
	}
	if maxMessageLength(64*1024) != 8192 || maxMessageLength(1<<30) != 16<<20 {
		t.Fatal("maxMessageLength")
	}
	if framedLength(14, 1376) != 64 || framedLength(1377, 1376) != 1408+64 || framedLength(3000, 1376) != 1408*2+288 {
		t.Fatal("framedLength")
	}
}

// TestAppendReadRoundTrip appends messages of many sizes across several
// term rotations (PAD at term end, fragmentation) and reads them back.
func TestAppendReadRoundTrip(t *testing.T) {
	const T = 64 * 1024
	l := newLogBuffer(T, 77)
	a := &termAppender{log: l, sessionID: 9, streamID: 10, maxPayload: 1408 - 32}
	var want [][]byte
	pos := int64(0)
	asm := &assembler{}
	var got [][]byte
	var lastPos int64
	for i := 0; i < 400; i++ {
		n := []int{0, 1, 8, 100, 1376, 1377, 3000, 8192, 5000}[i%9]
		msg := bytes.Repeat([]byte{byte(i)}, n)
		if n > 0 {
			msg[0] = byte(i >> 8)
		}
		req := a.required(n)
		np := a.append(msg, int64(i))
		if np != req {
			t.Fatalf("msg %d: append %d, required %d", i, np, req)
		}
		if l.termOffset(np-1)+1 > T || np <= pos {
			t.Fatalf("bad position %d", np)
		}
		want = append(want, msg)
		// The reader must keep up within 2 terms of the writer.
		readLog(l, &lastPos, np, 1<<30, asm, 9, 10, func(m []byte, h Header) {
			if h.ReservedValue != int64(len(got)) {
				t.Fatalf("reserved %d want %d", h.ReservedValue, len(got))
			}
			got = append(got, bytes.Clone(m))
		})
		pos = np
	}
	if lastPos != pos || len(got) != len(want) {
		t.Fatalf("read %d msgs to %d, want %d to %d", len(got), lastPos, len(want), pos)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("msg %d differs", i)
		}
	}
}

func TestPadAtTermEnd(t *testing.T) {
	const T = 64 * 1024
	l := newLogBuffer(T, 0)
	a := &termAppender{log: l, sessionID: 1, streamID: 2, maxPayload: 1376, pos: T - 64}
	np := a.append(make([]byte, 100), 0)
	if np != T+160 {
		t.Fatalf("pos %d", np)
	}
	term0 := l.termAt(0)
	if getType(term0[T-64:]) != typePad || getFrameLength(term0[T-64:]) != 64 || getFlags(term0[T-64:]) != flagsUnfrag {
		t.Fatalf("no PAD: %x", term0[T-64:T-32])
	}
	term1 := l.termAt(T)
	if getType(term1) != typeData || getI32(term1, 20) != 1 || getFrameLength(term1) != 132 {
		t.Fatalf("message not at start of term 1: %x", term1[:32])
	}
	// A message that exactly fills the term needs no PAD.
	b := &termAppender{log: newLogBuffer(T, 0), maxPayload: 1376, pos: T - 64}
	if np := b.append(make([]byte, 32), 0); np != T {
		t.Fatalf("exact fill: %d", np)
	}
}

func TestFragmentFlags(t *testing.T) {
	l := newLogBuffer(64*1024, 0)
	a := &termAppender{log: l, maxPayload: 1376}
	a.append(make([]byte, 3000), 0)
	term := l.termAt(0)
	var got []string
	for off := 0; off < int(a.pos); off += align32(int(getFrameLength(term[off:]))) {
		got = append(got, fmt.Sprintf("%d/%#x", getFrameLength(term[off:]), getFlags(term[off:])))
	}
	if fmt.Sprint(got) != "[1408/0x80 1408/0x0 280/0x40]" {
		t.Fatalf("fragments %v", got)
	}
}

// TestAppendZeroesAlignmentPadding: a reused (dirty) partition must not
// leak old bytes into the alignment padding that goes on the wire.
func TestAppendZeroesAlignmentPadding(t *testing.T) {
	l := newLogBuffer(64*1024, 0)
	for i := range l.buf {
		l.buf[i] = 0xFF
	}
	a := &termAppender{log: l, maxPayload: 1376}
	a.append(make([]byte, 14), 0)   // 46-byte frame, 18 bytes of padding
	a.append(make([]byte, 3000), 0) // last fragment 248+32 = 280 → 8 bytes of padding
	term := l.termAt(0)
	for off := 0; off < int(a.pos); {
		fl := int(getFrameLength(term[off:]))
		for k := off + fl; k < off+align32(fl); k++ {
			if term[k] != 0 {
				t.Fatalf("padding byte at %d is %#x", k, term[k])
			}
		}
		off += align32(fl)
	}
}
