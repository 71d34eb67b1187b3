// Package codec holds steadfast's wire and storage encodings, all msgpack
// (github.com/vmihailenco/msgpack/v5):
//
//   - Batch: a run of sequence-numbered values from one publisher incarnation
//     (publisher node id, epoch, first seq, values, and the beat time of the
//     first value for the delivery latency). Encoded by hand, without
//     reflection, because it is the hot path.
//   - Ack: a subscriber's committed watermark for one publisher.
//   - Control: small control messages (end of stream, hello).
//   - Snapshot: the versioned envelope of a pod's actor states, with a CRC32
//     over its payload so a torn or corrupt file is detected.
//
// Every message that travels on a transport stream starts with one Kind byte,
// so a receiver can tell them apart with Peek:
//
//	buf := codec.AppendBatch(buf[:0], &b)    // publisher
//	switch k, _ := codec.Peek(msg); k {      // subscriber
//	case codec.KindBatch:
//		err := codec.DecodeBatch(msg, &b)
//	...
//	}
//
// Decoding never panics on garbage: it returns an error wrapping ErrMalformed
// (or ErrChecksum for a snapshot whose checksum does not match).
package codec
