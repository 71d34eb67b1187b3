package codec

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
)

// Snapshot is the versioned envelope of a pod's persistent actor states.
//
// Byte layout (big-endian lengths):
//
//	0      4          8                8+n         12+n
//	+------+----------+----------------+-----------+
//	| SFS1 | n uint32 | payload n bytes | crc uint32|
//	+------+----------+----------------+-----------+
//
// payload is the msgpack array [node_id, epoch, version, taken_unix_nano,
// {actor name: state bytes}], and crc is CRC-32C (Castagnoli) of payload.
// Snapshots of one node order by (Epoch, Version); see Newer.
type Snapshot struct {
	_msgpack      struct{} `msgpack:",as_array"`
	NodeID        string
	Epoch         uint64
	Version       uint64
	TakenUnixNano int64
	States        map[string][]byte // actor name -> msgpack-encoded state
}

const snapshotMagic = "SFS1"

// snapshotOverhead is the envelope's size around the payload.
const snapshotOverhead = 12

// DefaultMaxSnapshot is the default cap on an encoded snapshot (16 MiB).
const DefaultMaxSnapshot = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Newer reports whether a is strictly newer than b by (Epoch, Version).
// A nil snapshot is older than any other.
func Newer(a, b *Snapshot) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	case a.Epoch != b.Epoch:
		return a.Epoch > b.Epoch
	}
	return a.Version > b.Version
}

// EncodeSnapshot returns the envelope of s. Map keys are written in sorted
// order, so equal snapshots encode to equal bytes.
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	if len(s.NodeID) == 0 || len(s.NodeID) > MaxIDLen {
		return nil, fmt.Errorf("codec: snapshot node id %q: length must be 1..%d", s.NodeID, MaxIDLen)
	}
	payload := make([]byte, 0, 64+statesSize(s.States))
	payload = appendArrayHeader(payload, 5)
	payload = appendString(payload, s.NodeID)
	payload = appendUint(payload, s.Epoch)
	payload = appendUint(payload, s.Version)
	payload = appendInt64(payload, s.TakenUnixNano)
	payload = appendStates(payload, s.States)
	if len(payload) > 1<<31 {
		return nil, fmt.Errorf("%w: snapshot of %d bytes", ErrTooLarge, len(payload))
	}
	out := make([]byte, 0, len(payload)+snapshotOverhead)
	out = append(out, snapshotMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(payload)))
	out = append(out, payload...)
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(payload, castagnoli))
	return out, nil
}

// DecodeSnapshot verifies and decodes an envelope. It rejects data longer
// than maxBytes (0 means DefaultMaxSnapshot) with ErrTooLarge, a checksum
// mismatch with ErrChecksum, and anything else malformed with ErrMalformed.
func DecodeSnapshot(data []byte, maxBytes int) (*Snapshot, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxSnapshot
	}
	switch {
	case len(data) > maxBytes:
		return nil, fmt.Errorf("%w: snapshot of %d bytes exceeds %d", ErrTooLarge, len(data), maxBytes)
	case len(data) < snapshotOverhead || string(data[:4]) != snapshotMagic:
		return nil, malformed("snapshot: bad header")
	}
	n := binary.BigEndian.Uint32(data[4:8])
	if uint64(n) != uint64(len(data)-snapshotOverhead) {
		return nil, malformed("snapshot: length %d does not match %d bytes (torn file?)", n, len(data)-snapshotOverhead)
	}
	payload := data[8 : 8+n]
	if got, want := crc32.Checksum(payload, castagnoli), binary.BigEndian.Uint32(data[8+n:]); got != want {
		return nil, fmt.Errorf("%w: crc %08x, want %08x", ErrChecksum, got, want)
	}
	r := reader{b: payload}
	if k := r.arrayHeader(); r.err == nil && k != 5 {
		r.fail("snapshot: want 5 fields")
	}
	s := &Snapshot{}
	s.NodeID = r.str(MaxIDLen)
	s.Epoch = r.uint()
	s.Version = r.uint()
	s.TakenUnixNano = r.int64()
	s.States = r.states()
	if r.err == nil && r.off != len(payload) {
		r.fail("snapshot: trailing bytes")
	}
	if r.err == nil && s.NodeID == "" {
		r.fail("snapshot: empty node id")
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

func statesSize(m map[string][]byte) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v) + 10
	}
	return n
}

func appendInt64(b []byte, v int64) []byte {
	b = append(b, 0xd3)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendStates(b []byte, m map[string][]byte) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := len(keys)
	switch {
	case n < 16:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0xde, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	for _, k := range keys {
		b = appendString(b, k)
		b = appendBin(b, m[k])
	}
	return b
}

func appendBin(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= 0xff:
		b = append(b, 0xc4, byte(n))
	case n <= 0xffff:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, v...)
}

// maxStateName bounds actor names inside a snapshot.
const maxStateName = 256

func (r *reader) int64() int64 {
	c := r.byte1()
	if r.err != nil {
		return 0
	}
	switch {
	case c < 0x80:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	case c == 0xd3:
		return int64(r.bigEndian(8))
	case c == 0xcf:
		return int64(r.bigEndian(8))
	}
	r.off--
	r.fail("expected integer")
	return 0
}

func (r *reader) states() map[string][]byte {
	c := r.byte1()
	var n int
	switch {
	case r.err != nil:
		return nil
	case c&0xf0 == 0x80:
		n = int(c & 0x0f)
	case c == 0xde:
		n = int(r.bigEndian(2))
	case c == 0xdf:
		n = int(r.bigEndian(4))
	default:
		r.off--
		r.fail("expected map")
		return nil
	}
	if r.err != nil || n > (len(r.b)-r.off)/2 { // a key and a value take at least a byte each
		r.fail("snapshot: state count exceeds payload")
		return nil
	}
	m := make(map[string][]byte, n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.str(maxStateName)
		v := r.bin()
		if _, dup := m[k]; dup && r.err == nil {
			r.fail("snapshot: duplicate state " + k)
		}
		m[k] = v
	}
	return m
}

func (r *reader) bin() []byte {
	c := r.byte1()
	var n int
	switch {
	case r.err != nil:
		return nil
	case c == 0xc4:
		n = int(r.bigEndian(1))
	case c == 0xc5:
		n = int(r.bigEndian(2))
	case c == 0xc6:
		n = int(r.bigEndian(4))
	default:
		r.off--
		r.fail("expected bin")
		return nil
	}
	if !r.need(n) {
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b[r.off:r.off+n])
	r.off += n
	return v
}
