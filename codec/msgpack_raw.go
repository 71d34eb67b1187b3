package codec

import (
	"encoding/binary"
	"math"
	"slices"
)

// Hand-written msgpack for the hot path (batches): only the forms a batch
// uses — arrays, strings and unsigned integers. The output is standard
// msgpack; codec_test checks it against github.com/vmihailenco/msgpack/v5.

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		b = append(b, 0xcf)
		return binary.BigEndian.AppendUint64(b, v)
	}
}

// reader decodes the same forms; every method reports malformed input
// through r.err and returns zero values after the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = malformed("%s at offset %d", what, r.off)
	}
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("truncated")
		return false
	}
	return true
}

func (r *reader) byte1() byte {
	if !r.need(1) {
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bigEndian(n int) uint64 {
	if !r.need(n) {
		return 0
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v
}

func (r *reader) arrayHeader() int {
	c := r.byte1()
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == 0xdc:
		return int(r.bigEndian(2))
	case c == 0xdd:
		return int(r.bigEndian(4))
	}
	r.off--
	r.fail("expected array")
	return 0
}

func (r *reader) str(maxLen int) string { return r.strReuse(maxLen, "") }

// strReuse returns prev, without allocating, when the string read equals it.
func (r *reader) strReuse(maxLen int, prev string) string {
	c := r.byte1()
	var n int
	switch {
	case r.err != nil:
		return ""
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9:
		n = int(r.bigEndian(1))
	case c == 0xda:
		n = int(r.bigEndian(2))
	case c == 0xdb:
		n = int(r.bigEndian(4))
	default:
		r.off--
		r.fail("expected string")
		return ""
	}
	if n > maxLen {
		r.fail("string too long")
		return ""
	}
	if !r.need(n) {
		return ""
	}
	raw := r.b[r.off : r.off+n]
	r.off += n
	if string(raw) == prev {
		return prev
	}
	return string(raw)
}

func (r *reader) uint() uint64 {
	c := r.byte1()
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		return uint64(c)
	case c == 0xcc:
		return r.bigEndian(1)
	case c == 0xcd:
		return r.bigEndian(2)
	case c == 0xce:
		return r.bigEndian(4)
	case c == 0xcf:
		return r.bigEndian(8)
	}
	r.off--
	r.fail("expected unsigned integer")
	return 0
}

// uints decodes len(dst) unsigned integers into dst: what calling uint for
// each would do, with one bounds check a value instead of several (the
// subscriber decodes every value of every batch).
func (r *reader) uints(dst []uint64) {
	if r.err != nil {
		return
	}
	b, off := r.b, r.off
	for i := range dst {
		if off < len(b) {
			switch c := b[off]; {
			case c < 0x80:
				dst[i] = uint64(c)
				off++
				continue
			case c == 0xce && off+5 <= len(b):
				dst[i] = uint64(binary.BigEndian.Uint32(b[off+1:]))
				off += 5
				continue
			case c == 0xcc && off+2 <= len(b):
				dst[i] = uint64(b[off+1])
				off += 2
				continue
			case c == 0xcd && off+3 <= len(b):
				dst[i] = uint64(binary.BigEndian.Uint16(b[off+1:]))
				off += 3
				continue
			case c == 0xcf && off+9 <= len(b):
				dst[i] = binary.BigEndian.Uint64(b[off+1:])
				off += 9
				continue
			}
		}
		// Truncated, or not an unsigned integer: uint reports it.
		r.off = off
		for j := i; j < len(dst) && r.err == nil; j++ {
			dst[j] = r.uint()
		}
		return
	}
	r.off = off
}

// appendUints appends the encodings of vs (appendUint each, inlined, after
// growing dst once).
func appendUints(dst []byte, vs []uint64) []byte {
	dst = slices.Grow(dst, 9*len(vs))
	for _, v := range vs {
		dst = appendUint(dst, v)
	}
	return dst
}
