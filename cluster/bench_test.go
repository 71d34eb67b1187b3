package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
)

// BenchmarkSave measures Save (local atomic write + one replica's
// acknowledgement) in a 3-node cluster on loopback, per snapshot size.
// COMPRESS=1 turns memberlist's compression on for comparison.
func BenchmarkSave(b *testing.B) {
	cfg := func(id string, seeds ...string) Config {
		c := testConfig(b, id, seeds...)
		ml := *c.Memberlist
		ml.EnableCompression = os.Getenv("COMPRESS") != "" // memberlist's LZW, off by default
		c.Memberlist = &ml
		return c
	}
	a, _ := startNode(b, cfg("a"))
	startNode(b, cfg("b", a.LocalAddr()))
	x, xb := startNode(b, cfg("x", a.LocalAddr()))
	waitFor(b, "3 members", func() bool { return len(x.Members()) == 3 })
	version := uint64(0)
	for _, size := range []int{4 << 10, 256 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			snap := snapshot("x", xb.Epoch, 0, "")
			snap.States["worker"] = bytes.Repeat([]byte{'s'}, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				version++
				snap.Version = version
				if _, err := x.Save(context.Background(), snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
