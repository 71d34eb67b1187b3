package codec

import "math"

// Batch is a run of sequence-numbered values from one publisher incarnation:
// Values[i] has sequence number FirstSeq+i. Sequence numbers start at 1.
//
// Wire form: KindBatch, then the msgpack array
//
//	[publisher str, epoch uint, first_seq uint, [value uint, ...]]            Beat == 0
//	[publisher str, epoch uint, first_seq uint, [value uint, ...], beat uint]  Beat > 0
//
// The beat field was appended to the original four-field form, which is
// still written when Beat is 0 and still read (as Beat 0): a subscriber
// reads batches of publishers of either version, and a publisher that
// stamps its batches needs subscribers of this version (older ones refuse
// five fields). Append-only: a later field goes after beat.
type Batch struct {
	Publisher string // publisher node id
	Epoch     uint64 // publisher epoch (incarnation)
	FirstSeq  uint64
	Values    []uint64
	// Beat: when the publisher's heartbeat emitted the beat that generated
	// the value at FirstSeq, in unix nanoseconds on the publisher's clock;
	// 0 when unknown. The decoder only checks that it is a positive int64;
	// whether it is plausible is the receiver's judgement (clocks differ
	// across hosts).
	Beat int64
}

// LastSeq is the sequence number of the batch's last value (FirstSeq-1 when empty).
func (b *Batch) LastSeq() uint64 { return b.FirstSeq + uint64(len(b.Values)) - 1 }

// AppendBatch appends the encoding of b to dst and returns the extended slice.
// It does not use reflection and does not allocate when dst has room. A
// negative Beat is written as 0 (unknown).
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, byte(KindBatch))
	if b.Beat > 0 {
		dst = appendArrayHeader(dst, 5)
	} else {
		dst = appendArrayHeader(dst, 4)
	}
	dst = appendString(dst, b.Publisher)
	dst = appendUint(dst, b.Epoch)
	dst = appendUint(dst, b.FirstSeq)
	dst = appendArrayHeader(dst, len(b.Values))
	dst = appendUints(dst, b.Values)
	if b.Beat > 0 {
		dst = appendUint(dst, uint64(b.Beat))
	}
	return dst
}

// DecodeBatch decodes msg into b, reusing b.Values' storage. On error b's
// contents are unspecified and the error wraps ErrMalformed. A five-field
// batch whose beat is 0 or beyond math.MaxInt64 is malformed (the encoder
// writes four fields for an unknown beat).
func DecodeBatch(msg []byte, b *Batch) error {
	if len(msg) == 0 || Kind(msg[0]) != KindBatch {
		return malformed("not a batch")
	}
	r := reader{b: msg, off: 1}
	fields := r.arrayHeader()
	if r.err == nil && fields != 4 && fields != 5 {
		r.fail("batch: want 4 or 5 fields")
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
	b.Beat = 0
	if fields == 5 {
		beat := r.uint()
		if r.err == nil && (beat == 0 || beat > math.MaxInt64) {
			r.fail("batch: beat time out of range")
		}
		b.Beat = int64(beat)
	}
	if r.err == nil && r.off != len(msg) {
		r.fail("batch: trailing bytes")
	}
	if r.err == nil && n > 0 && b.FirstSeq+uint64(n)-1 < b.FirstSeq {
		r.fail("batch: sequence overflow")
	}
	return r.err
}
