package codec

import "testing"

// BenchmarkBatch1000: encode + decode of a 1,000-value batch (value = seq),
// reusing buffers as the pods do.
func BenchmarkBatch1000(b *testing.B) {
	in := seqBatch(1_000_000, 1000)
	buf := AppendBatch(nil, in)
	var out Batch
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], in)
		if err := DecodeBatch(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshot1MiB(b *testing.B) {
	s := &Snapshot{NodeID: "sub-1", Epoch: 1, Version: 1, States: map[string][]byte{"logger": make([]byte, 1<<20)}}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		enc, err := EncodeSnapshot(s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeSnapshot(enc, 0); err != nil {
			b.Fatal(err)
		}
	}
}
