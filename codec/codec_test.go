package codec

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// seqBatch returns a batch of n values with value = seq, as the publisher makes them.
func seqBatch(first uint64, n int) *Batch {
	b := &Batch{Publisher: "pub-1", Epoch: 7, FirstSeq: first, Values: make([]uint64, n)}
	for i := range b.Values {
		b.Values[i] = first + uint64(i)
	}
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	cases := []*Batch{
		{Publisher: "p", Epoch: 0, FirstSeq: 1, Values: []uint64{}},
		seqBatch(1, 1),
		seqBatch(1, 15),
		seqBatch(1, 16),
		seqBatch(1<<40, 1000),
		seqBatch(1, 70000), // array32 header
		{Publisher: string(bytes.Repeat([]byte("x"), MaxIDLen)), Epoch: math.MaxUint64, FirstSeq: 5,
			Values: []uint64{0, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}},
		stamped(seqBatch(1, 3), 1),
		stamped(seqBatch(9, 100), 1_795_000_000_123_456_789),
		stamped(seqBatch(1, 0), math.MaxInt64),
	}
	var got Batch
	for _, want := range cases {
		enc := AppendBatch(nil, want)
		if k, err := Peek(enc); err != nil || k != KindBatch {
			t.Fatalf("Peek = %v, %v", k, err)
		}
		if err := DecodeBatch(enc, &got); err != nil {
			t.Fatalf("decode %d values: %v", len(want.Values), err)
		}
		if got.Publisher != want.Publisher || got.Epoch != want.Epoch || got.FirstSeq != want.FirstSeq ||
			!slices.Equal(got.Values, want.Values) || got.Beat != want.Beat {
			t.Fatalf("round trip of %d values differs", len(want.Values))
		}
	}
}

// The hand-written batch encoding must be standard msgpack.
func TestBatchIsStandardMsgpack(t *testing.T) {
	want := seqBatch(100, 300)
	want.Values[3] = math.MaxUint64
	enc := AppendBatch(nil, want)
	var fields []any
	if err := msgpack.Unmarshal(enc[1:], &fields); err != nil {
		t.Fatal(err)
	}
	var viaLib struct {
		_msgpack  struct{} `msgpack:",as_array"`
		Publisher string
		Epoch     uint64
		FirstSeq  uint64
		Values    []uint64
	}
	if err := msgpack.Unmarshal(enc[1:], &viaLib); err != nil {
		t.Fatal(err)
	}
	if viaLib.Publisher != want.Publisher || viaLib.FirstSeq != 100 || !reflect.DeepEqual(viaLib.Values, want.Values) {
		t.Fatalf("msgpack library reads a different batch")
	}
	// And the library's encoding of the same batch decodes with ours.
	lib, err := msgpack.Marshal(&viaLib)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := DecodeBatch(append([]byte{byte(KindBatch)}, lib...), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Values, want.Values) {
		t.Fatal("our decoder reads the library's encoding differently")
	}
}

func stamped(b *Batch, beat int64) *Batch {
	b.Beat = beat
	return b
}

// TestBatchBeat: an unstamped batch keeps the original four-field form byte
// for byte (publishers and subscribers of the previous version interoperate
// as long as nothing is stamped), a stamped one has a fifth field that the
// msgpack library reads too, and a beat that is not a positive int64 is
// malformed, never clamped by the decoder.
func TestBatchBeat(t *testing.T) {
	// The encoding of this batch before the beat field existed.
	old := []byte{byte(KindBatch), 0x94, 0xa5, 'p', 'u', 'b', '-', '1', 7, 0xcc, 200, 0x92, 0xcc, 200, 0xcc, 201}
	if enc := AppendBatch(nil, seqBatch(200, 2)); !bytes.Equal(enc, old) {
		t.Fatalf("unstamped batch % x, want the four-field form % x", enc, old)
	}
	if enc := AppendBatch(nil, stamped(seqBatch(200, 2), -5)); !bytes.Equal(enc, old) {
		t.Fatalf("negative beat: % x, want it written as unknown % x", enc, old)
	}
	var got Batch
	got.Beat = 99 // a reused Batch: an old-form message must reset it
	if err := DecodeBatch(old, &got); err != nil || got.Beat != 0 || got.FirstSeq != 200 || len(got.Values) != 2 {
		t.Fatalf("old form: %+v, %v", got, err)
	}

	enc := AppendBatch(nil, stamped(seqBatch(200, 2), 1_795_000_000_000_000_000))
	var fields []msgpack.RawMessage
	if err := msgpack.Unmarshal(enc[1:], &fields); err != nil || len(fields) != 5 {
		t.Fatalf("msgpack library reads %d fields, %v", len(fields), err)
	}
	var beat int64
	if err := msgpack.Unmarshal(fields[4], &beat); err != nil || beat != 1_795_000_000_000_000_000 {
		t.Fatalf("msgpack library reads beat %d, %v", beat, err)
	}

	// Five fields with a beat that is not a positive int64, six fields.
	five := func(beat ...byte) []byte {
		m := append([]byte{}, old...)
		m[1] = 0x95
		return append(m, beat...)
	}
	for name, m := range map[string][]byte{
		"beat 0":          five(0),
		"beat 2^63":       five(0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0),
		"beat max uint64": five(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"beat negative":   five(0xff), // msgpack negative fixint
		"beat string":     five(0xa1, '1'),
		"beat missing":    five(),
		"six fields":      append(five(1), 1),
	} {
		if name == "six fields" {
			m[1] = 0x96
		}
		if err := DecodeBatch(m, &got); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if err := DecodeBatch(five(0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), &got); err != nil || got.Beat != math.MaxInt64 {
		t.Errorf("beat MaxInt64: %d, %v", got.Beat, err)
	}
}

func TestBatchGarbage(t *testing.T) {
	good := AppendBatch(nil, seqBatch(1, 50))
	var b Batch
	for i := 0; i < len(good); i++ { // every truncation
		if err := DecodeBatch(good[:i], &b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: err = %v", i, err)
		}
	}
	bad := [][]byte{
		append(append([]byte{}, good...), 0),                                   // trailing byte
		{byte(KindBatch), 0x94, 0xa1, 'p', 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff}, // huge count
		{byte(KindBatch), 0x93, 0xa1, 'p', 1, 1},                               // wrong arity
		{byte(KindAck)},
		{byte(KindBatch), 0x94, 0xa1, 'p', 1, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x92, 1, 2}, // seq overflow
	}
	for i, m := range bad {
		if err := DecodeBatch(m, &b); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: err = %v, want ErrMalformed", i, err)
		}
	}
	if _, err := Peek(nil); err == nil {
		t.Error("Peek(nil) succeeded")
	}
	if _, err := Peek([]byte{99}); err == nil {
		t.Error("Peek of unknown kind succeeded")
	}
}

func TestAckAndControlRoundTrip(t *testing.T) {
	a := Ack{Subscriber: "sub-1", SubscriberEpoch: 3, Publisher: "pub-1", PublisherEpoch: 9, Committed: 123456789}
	enc, err := AppendAck(nil, &a)
	if err != nil {
		t.Fatal(err)
	}
	var ga Ack
	if err := DecodeAck(enc, &ga); err != nil || ga != a {
		t.Fatalf("ack round trip: %+v, %v", ga, err)
	}
	c := Control{Type: ControlEndOfStream, NodeID: "pub-1", Epoch: 2, Seq: 1000}
	enc, err = AppendControl(enc[:0], &c)
	if err != nil {
		t.Fatal(err)
	}
	var gc Control
	if err := DecodeControl(enc, &gc); err != nil || gc != c {
		t.Fatalf("control round trip: %+v, %v", gc, err)
	}
	if err := DecodeAck(enc, &ga); !errors.Is(err, ErrMalformed) {
		t.Fatalf("control decoded as ack: %v", err)
	}
	bad, _ := AppendControl(nil, &Control{Type: 99, NodeID: "x"})
	if err := DecodeControl(bad, &gc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown control type accepted: %v", err)
	}
	for i := 0; i < len(enc); i++ {
		if err := DecodeControl(enc[:i], &gc); err == nil {
			t.Fatalf("truncated control (%d bytes) accepted", i)
		}
	}
}

func TestSnapshotRoundTripAndCorruption(t *testing.T) {
	s := &Snapshot{NodeID: "sub-1", Epoch: 4, Version: 17, TakenUnixNano: -5,
		States: map[string][]byte{"logger": {1, 2, 3}, "worker": {}, "receive": bytes.Repeat([]byte{9}, 70000)}}
	enc, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeSnapshot(s)
	if !bytes.Equal(enc, again) {
		t.Fatal("encoding is not deterministic")
	}
	got, err := DecodeSnapshot(enc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != s.NodeID || got.Epoch != 4 || got.Version != 17 || got.TakenUnixNano != -5 ||
		!reflect.DeepEqual(got.States, s.States) {
		t.Fatalf("snapshot round trip differs: %+v", got)
	}
	// Every single-bit flip is detected (checksum, header or length).
	for i := 0; i < len(enc); i += 1 + len(enc)/500 {
		c := append([]byte(nil), enc...)
		c[i] ^= 0x10
		if _, err := DecodeSnapshot(c, 0); err == nil {
			t.Fatalf("bit flip at %d not detected", i)
		}
	}
	// A torn file (any prefix) is rejected.
	for _, n := range []int{0, 3, 11, 12, len(enc) / 2, len(enc) - 1} {
		if _, err := DecodeSnapshot(enc[:n], 0); err == nil {
			t.Fatalf("torn snapshot of %d bytes accepted", n)
		}
	}
	flip := append([]byte(nil), enc...)
	flip[100] ^= 1
	if _, err := DecodeSnapshot(flip, 0); !errors.Is(err, ErrChecksum) {
		t.Fatalf("payload flip: err = %v, want ErrChecksum", err)
	}
	if _, err := DecodeSnapshot(enc, len(enc)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("cap: err = %v, want ErrTooLarge", err)
	}
	if _, err := EncodeSnapshot(&Snapshot{}); err == nil {
		t.Fatal("snapshot without node id encoded")
	}
}

func TestNewer(t *testing.T) {
	a := &Snapshot{Epoch: 2, Version: 1}
	b := &Snapshot{Epoch: 1, Version: 99}
	c := &Snapshot{Epoch: 2, Version: 2}
	if !Newer(a, b) || Newer(b, a) || !Newer(c, a) || Newer(a, a) || !Newer(a, nil) || Newer(nil, a) {
		t.Fatal("Newer orders by (epoch, version)")
	}
}

func TestStateCodec(t *testing.T) {
	type logger struct {
		Counts map[string]uint64
		Sum    uint64
	}
	in := logger{Counts: map[string]uint64{"Fizz": 3}, Sum: 99}
	var sc StateCodec
	b, err := sc.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out logger
	if err := sc.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("state round trip: %+v %v", out, err)
	}
	if err := sc.Unmarshal([]byte{0xc1}, &out); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage state: %v", err)
	}
}

// TestUintsMatchesUint: the batch decoder's value loop (reader.uints) reads
// exactly what a uint a value reads, and fails where it fails, on every
// form, truncation and wrong type at every position.
func TestUintsMatchesUint(t *testing.T) {
	vals := []uint64{0, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64, 5}
	enc := appendUints(nil, vals)
	var want []byte
	for _, v := range vals {
		want = appendUint(want, v)
	}
	if !bytes.Equal(enc, want) {
		t.Fatalf("appendUints % x, want % x", enc, want)
	}
	check := func(in []byte, n int) {
		t.Helper()
		slow := reader{b: in}
		sv := make([]uint64, n)
		for i := range sv {
			sv[i] = slow.uint()
		}
		fast := reader{b: in}
		fv := make([]uint64, n)
		fast.uints(fv)
		if (slow.err == nil) != (fast.err == nil) || slow.off != fast.off || (slow.err == nil && !slices.Equal(sv, fv)) {
			t.Fatalf("input % x, %d values: uint %v %v at %d, uints %v %v at %d", in, n, sv, slow.err, slow.off, fv, fast.err, fast.off)
		}
		if slow.err != nil && slow.err.Error() != fast.err.Error() {
			t.Fatalf("errors differ: %v / %v", slow.err, fast.err)
		}
	}
	for cut := 0; cut <= len(enc); cut++ {
		check(enc[:cut], len(vals))
	}
	for i := range enc {
		for _, c := range []byte{0xc0, 0xd0, 0xa1, 0x90, 0xcf, 0xcc, 0x7f} {
			bad := bytes.Clone(enc)
			bad[i] = c
			check(bad, len(vals))
		}
	}
}
