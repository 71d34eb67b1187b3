package transport

import (
	"bytes"
	"testing"
)

var typeNames = map[int16]string{
	typePad: "PAD", typeData: "DATA", typeNAK: "NAK", typeSM: "SM", typeErr: "ERR",
	typeSetup: "SETUP", typeRTTM: "RTTM",
}

// TestCaptureDecodeReencode decodes every datagram of every capture file,
// checks the decoded fields against the capture's own decoding and
// re-encodes the frames byte for byte.
func TestCaptureDecodeReencode(t *testing.T) {
	total := 0
	for _, name := range captureFiles {
		for _, d := range loadCapture(t, name) {
			total++
			frames, r := parseDatagram(d.raw)
			if r != dropNone {
				t.Fatalf("%s #%d: dropped (%v)", name, d.I, r)
			}
			if len(frames) != len(d.Frames) {
				t.Fatalf("%s #%d: %d frames, capture says %d", name, d.I, len(frames), len(d.Frames))
			}
			var enc []byte
			for k := range frames {
				f, c := &frames[k], &d.Frames[k]
				if typeNames[f.Type] != c.Type || int(f.Flags) != c.Flags || f.FrameLength != c.FrameLength || int(f.Version) != c.Version {
					t.Fatalf("%s #%d frame %d: got %+v want %+v", name, d.I, k, f, c)
				}
				if len(enc) != c.Offset {
					t.Fatalf("%s #%d frame %d: at offset %d, capture says %d", name, d.I, k, len(enc), c.Offset)
				}
				switch f.Type {
				case typeData, typePad:
					if f.TermOffset != c.TermOffset || f.SessionID != c.SessionID || f.StreamID != c.StreamID || f.TermID != c.TermID || f.Reserved != c.Reserved {
						t.Fatalf("%s #%d frame %d: header %+v want %+v", name, d.I, k, f, c)
					}
					if f.isHeartbeat() != c.Heartbeat || (f.Type == typeData && len(f.Payload) != c.PayloadLen) {
						t.Fatalf("%s #%d frame %d: heartbeat/payload mismatch", name, d.I, k)
					}
				case typeSetup:
					if f.TermOffset != c.TermOffset || f.SessionID != c.SessionID || f.StreamID != c.StreamID || f.InitialTermID != c.InitialTermID ||
						f.ActiveTermID != c.ActiveTermID || f.TermLength != c.TermLength || f.MTU != c.MTU || f.TTL != c.TTL {
						t.Fatalf("%s #%d: setup %+v want %+v", name, d.I, f, c)
					}
				case typeSM:
					if f.SessionID != c.SessionID || f.StreamID != c.StreamID || f.TermID != c.ConsTermID || f.ConsumptionOffset != c.ConsOffset ||
						f.ReceiverWindow != c.Window || f.ReceiverID != c.ReceiverID {
						t.Fatalf("%s #%d: sm %+v want %+v", name, d.I, f, c)
					}
				case typeNAK:
					if f.SessionID != c.SessionID || f.StreamID != c.StreamID || f.TermID != c.TermID || f.TermOffset != c.TermOffset || f.Length != c.Length {
						t.Fatalf("%s #%d: nak %+v want %+v", name, d.I, f, c)
					}
				}
				enc = appendFrame(enc, f)
			}
			if !bytes.Equal(enc, d.raw) {
				t.Fatalf("%s #%d: re-encoded\n%x\nwant\n%x", name, d.I, enc, d.raw)
			}
		}
	}
	if total != 198+171+98+268+417+548+139+201+180 {
		t.Fatalf("decoded %d datagrams", total)
	}
}

func TestHeartbeatAndControlEncoders(t *testing.T) {
	buf := make([]byte, 64)
	hb := encodeHeartbeat(buf, flagsUnfrag|flagEOS, 704, 835206843, 1001, 1388479435)
	fs, r := parseDatagram(hb)
	if r != dropNone || len(fs) != 1 || !fs[0].isHeartbeat() || fs[0].Flags != 0xE0 || fs[0].TermOffset != 704 {
		t.Fatalf("heartbeat: %v %+v", r, fs)
	}
	sm := encodeSM(buf, smFlagSetup, 1, 2, 0, 0, 0, -5)
	fs, r = parseDatagram(sm)
	if r != dropNone || fs[0].Type != typeSM || fs[0].Flags != 0x80 || fs[0].ReceiverID != -5 {
		t.Fatalf("sm: %v %+v", r, fs)
	}
	nak := encodeNAK(buf, 1, 2, 3, 4, 5)
	fs, r = parseDatagram(nak)
	if r != dropNone || fs[0].Type != typeNAK || fs[0].Length != 5 || fs[0].TermOffset != 4 {
		t.Fatalf("nak: %v %+v", r, fs)
	}
	st := encodeSetup(buf, 64, 1, 2, 3, 4, 1<<16, 1408, 0)
	fs, r = parseDatagram(st)
	if r != dropNone || fs[0].Type != typeSetup || fs[0].TermLength != 1<<16 || fs[0].ActiveTermID != 4 {
		t.Fatalf("setup: %v %+v", r, fs)
	}
}

func TestMalformedDatagramsDropped(t *testing.T) {
	data := func(fl int32, n int) []byte {
		b := make([]byte, max(n, hdrLen))
		putDataHeader(b, fl, flagsUnfrag, typeData, 0, 1, 2, 3, 0)
		return b[:n]
	}
	wrongVersion := data(40, 64)
	wrongVersion[4] = 1
	unknown := data(40, 64)
	putI32(unknown, 6, 0)
	le.PutUint16(unknown[6:], 99)
	setupShort := make([]byte, 36)
	putCommon(setupShort, 40, 0, typeSetup)
	smShort := make([]byte, 32)
	putCommon(smShort, 36, 0, typeSM)
	smLying := make([]byte, 36)
	putCommon(smLying, 44, 0, typeSM)
	errBadLen := make([]byte, 48)
	putCommon(errBadLen, 48, 0, typeErr)
	putI32(errBadLen, 36, 100)
	cases := []struct {
		name string
		b    []byte
		want dropReason
	}{
		{"empty", nil, dropShort},
		{"7 bytes", make([]byte, 7), dropShort},
		{"data under 32", data(40, 20), dropShort},
		{"truncated", data(100, 64), dropTruncated},
		{"frame_length under header", data(10, 64), dropBadLength},
		{"zero length not heartbeat", data(0, 64), dropBadLength},
		{"negative length", data(-5, 64), dropBadLength},
		{"wrong version", wrongVersion, dropVersion},
		{"unknown type", unknown, dropUnknown},
		{"oversized", data(40, maxUDPPayload+32), dropOversized},
		{"setup under 40", setupShort, dropShort},
		{"sm under 36", smShort, dropShort},
		{"sm frame_length beyond datagram", smLying, dropTruncated},
		{"err text beyond datagram", errBadLen, dropBadLength},
	}
	for _, c := range cases {
		if _, r := parseDatagram(c.b); r != c.want {
			t.Errorf("%s: got %v want %v", c.name, r, c.want)
		}
	}
	// A second frame with a bad version poisons the whole datagram.
	two := data(40, 128)
	putDataHeader(two[64:], 40, flagsUnfrag, typeData, 64, 1, 2, 3, 0)
	two[64+4] = 7
	if _, r := parseDatagram(two); r != dropVersion {
		t.Errorf("second frame bad version: %v", r)
	}
	// Batched frames then trailing zeros: the walk stops at frame_length 0.
	ok := data(40, 128)
	if fs, r := parseDatagram(ok); r != dropNone || len(fs) != 1 {
		t.Errorf("trailing zeros: %v %d", r, len(fs))
	}
}

// FuzzParseDatagram checks that no input panics the parser and that every
// accepted datagram re-encodes to a datagram that parses to the same frames.
func FuzzParseDatagram(f *testing.F) {
	for _, name := range []string{"a2_clean_fragmented.jsonl", "a4_clean_term_rollover_pad.jsonl", "c2_subscriber_restart.jsonl"} {
		for i, d := range loadCapture(f, name) {
			if i%7 == 0 {
				f.Add(d.raw)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, r := parseDatagram(b)
		if r != dropNone {
			return
		}
		var enc []byte
		for k := range frames {
			enc = appendFrame(enc, &frames[k])
		}
		again, r2 := parseDatagram(enc)
		if r2 != dropNone || len(again) != len(frames) {
			t.Fatalf("re-encoded datagram: %v, %d frames want %d", r2, len(again), len(frames))
		}
		for k := range again {
			a, b := again[k], frames[k]
			if a.Type != b.Type || a.FrameLength != b.FrameLength || a.Flags != b.Flags || a.SessionID != b.SessionID || a.TermOffset != b.TermOffset || !bytes.Equal(a.Payload, b.Payload) {
				t.Fatalf("frame %d differs: %+v vs %+v", k, a, b)
			}
		}
	})
}
