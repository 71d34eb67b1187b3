package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/steadfast-pods/steadfast/codec"
)

// benchBodies: raw sizes, and real batch encodings of 1 and 1024 values
// (seqs around 1e6, as in a long stream).
func benchBodies() []struct {
	name string
	body []byte
} {
	batch := func(n int) []byte {
		b := codec.Batch{Publisher: "publisher-1", Epoch: 3, FirstSeq: 1_000_000}
		for i := range n {
			b.Values = append(b.Values, 1_000_000+uint64(i))
		}
		return codec.AppendBatch(nil, &b)
	}
	return []struct {
		name string
		body []byte
	}{
		{"32B", make([]byte, 32)},
		{"1KiB", make([]byte, 1024)},
		{"batch1", batch(1)},
		{"batch1024", batch(1024)},
	}
}

// BenchmarkSeal: the sender's cost per message.
func BenchmarkSeal(b *testing.B) {
	k := mustKeys(b, key1)
	s := mustSealer(b, k, pub)
	for _, bb := range benchBodies() {
		b.Run(fmt.Sprintf("%s-%dB", bb.name, len(bb.body)), func(b *testing.B) {
			buf := make([]byte, 0, len(bb.body)+TrailerLen)
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				buf = append(buf[:0], bb.body...)
				if _, err := s.Seal(buf, sub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify: the receiver's cost per message (steady state: a known
// sender, counters increasing).
func BenchmarkVerify(b *testing.B) {
	k := mustKeys(b, key1)
	for _, bb := range benchBodies() {
		b.Run(fmt.Sprintf("%s-%dB", bb.name, len(bb.body)), func(b *testing.B) {
			s := mustSealer(b, k, pub)
			v := mustVerifier(b, k, sub)
			msgs := make([][]byte, 1024)
			for i := range msgs {
				m, _ := s.Seal(append([]byte(nil), bb.body...), sub)
				msgs[i] = m
			}
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(msgs) { // re-seal with fresh counters (not timed)
					b.StopTimer()
					for j := range msgs {
						msgs[j], _ = s.Seal(msgs[j][:len(msgs[j])-TrailerLen], sub)
					}
					i = 0
					b.StartTimer()
				}
				if err := v.Verify(msgs[i], pub); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkNewSender: the first message of a new sender incarnation (key
// derivation with HKDF, then verification).
func BenchmarkNewSender(b *testing.B) {
	k := mustKeys(b, key1)
	s := mustSealer(b, k, pub)
	m := seal(b, s, "hello", sub)
	b.ReportAllocs()
	for b.Loop() {
		v, _ := k.NewVerifier(sub, VerifierConfig{})
		if err := v.Verify(m, pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACAlternative is the MAC considered instead of GMAC:
// HMAC-SHA256 truncated to 16 bytes, over the body and 26 bytes of counter
// and recipient. Kept for comparison (doc.go says why GMAC).
func BenchmarkHMACAlternative(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(fmt.Sprintf("%s-%dB", bb.name, len(bb.body)), func(b *testing.B) {
			h := hmac.New(sha256.New, key1)
			suffix := make([]byte, 8+8+1+len(sub.ID))
			var sum [sha256.Size]byte
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			var c uint64
			for b.Loop() {
				c++
				binary.BigEndian.PutUint64(suffix, c)
				h.Reset()
				h.Write(bb.body)
				h.Write(suffix)
				_ = h.Sum(sum[:0])[:TagLen]
			}
		})
	}
}
