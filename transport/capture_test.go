package transport

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// captureDir holds the real aeronmd datagrams (see its README.md), an
// in-repo copy so a fresh clone's tests need nothing outside it.
const captureDir = "testdata/aeron-capture"

type capFrame struct {
	Offset        int    `json:"offset"`
	Type          string `json:"type"`
	TypeID        int    `json:"type_id"`
	Version       int    `json:"version"`
	Flags         int    `json:"flags"`
	FrameLength   int32  `json:"frame_length"`
	TermOffset    int32  `json:"term_offset"`
	SessionID     int32  `json:"session_id"`
	StreamID      int32  `json:"stream_id"`
	TermID        int32  `json:"term_id"`
	Reserved      int64  `json:"reserved_value"`
	InitialTermID int32  `json:"initial_term_id"`
	ActiveTermID  int32  `json:"active_term_id"`
	TermLength    int32  `json:"term_length"`
	MTU           int32  `json:"mtu"`
	TTL           int32  `json:"ttl"`
	ConsTermID    int32  `json:"consumption_term_id"`
	ConsOffset    int32  `json:"consumption_term_offset"`
	Window        int32  `json:"receiver_window"`
	ReceiverID    int64  `json:"receiver_id"`
	Length        int32  `json:"length"`
	Heartbeat     bool   `json:"heartbeat"`
	PayloadLen    int    `json:"payload_len"`
}

type capDatagram struct {
	I       int        `json:"i"`
	TUs     int64      `json:"t_us"`
	Src     string     `json:"src"`
	Dst     string     `json:"dst"`
	Len     int        `json:"len"`
	Dropped bool       `json:"dropped"`
	Hex     string     `json:"hex"`
	Frames  []capFrame `json:"frames"`
	raw     []byte
}

var captureFiles = []string{
	"a1_clean_basic.jsonl",
	"a2_clean_fragmented.jsonl",
	"a3_clean_mtu8192.jsonl",
	"a4_clean_term_rollover_pad.jsonl",
	"b1_loss_5pct.jsonl",
	"b2_loss_5pct_term64k.jsonl",
	"c1_late_subscriber.jsonl",
	"c2_subscriber_restart.jsonl",
	"c3_subscriber_restart_long_gap.jsonl",
}

func loadCapture(t testing.TB, name string) []capDatagram {
	t.Helper()
	f, err := os.Open(filepath.Join(captureDir, name))
	if err != nil {
		t.Fatalf("capture %s: %v", name, err)
	}
	defer f.Close()
	var out []capDatagram
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var d capDatagram
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("%s line %d: %v", name, len(out), err)
		}
		d.raw, err = hex.DecodeString(d.Hex)
		if err != nil || len(d.raw) != d.Len {
			t.Fatalf("%s #%d: bad hex (%v)", name, d.I, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("capture %s is empty", name)
	}
	return out
}
