package codec

// Batch is a run of sequence-numbered values from one publisher incarnation:
// Values[i] has sequence number FirstSeq+i. Sequence numbers start at 1.
//
// Wire form: KindBatch, then the msgpack array
// [publisher str, epoch uint, first_seq uint, [value uint, ...]].
type Batch struct {
	Publisher string // publisher node id
	Epoch     uint64 // publisher epoch (incarnation)
	FirstSeq  uint64
	Values    []uint64
}

// LastSeq is the sequence number of the batch's last value (FirstSeq-1 when empty).
func (b *Batch) LastSeq() uint64 { return b.FirstSeq + uint64(len(b.Values)) - 1 }

// AppendBatch appends the encoding of b to dst and returns the extended slice.
// It does not use reflection and does not allocate when dst has room.
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, byte(KindBatch))
	dst = appendArrayHeader(dst, 4)
	dst = appendString(dst, b.Publisher)
	dst = appendUint(dst, b.Epoch)
	dst = appendUint(dst, b.FirstSeq)
	dst = appendArrayHeader(dst, len(b.Values))
	dst = appendUints(dst, b.Values)
	return dst
}

// DecodeBatch decodes msg into b, reusing b.Values' storage. On error b's
// contents are unspecified and the error wraps ErrMalformed.
func DecodeBatch(msg []byte, b *Batch) error {
	if len(msg) == 0 || Kind(msg[0]) != KindBatch {
		return malformed("not a batch")
	}
	r := reader{b: msg, off: 1}
	if n := r.arrayHeader(); r.err == nil && n != 4 {
		r.fail("batch: want 4 fields")
	}
	b.Publisher = r.strReuse(MaxIDLen, b.Publisher) // steady streams: no allocation
	b.Epoch = r.uint()
	b.FirstSeq = r.uint()
	n := r.arrayHeader()
	if r.err == nil && n > len(msg)-r.off { // every value takes at least one byte
		r.fail("batch: value count exceeds message")
	}
	if r.err != nil {
		return r.err
	}
	if cap(b.Values) < n {
		b.Values = make([]uint64, n)
	}
	b.Values = b.Values[:n]
	r.uints(b.Values)
	if r.err == nil && r.off != len(msg) {
		r.fail("batch: trailing bytes")
	}
	if r.err == nil && n > 0 && b.FirstSeq+uint64(n)-1 < b.FirstSeq {
		r.fail("batch: sequence overflow")
	}
	return r.err
}
