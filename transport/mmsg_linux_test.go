//go:build linux && (amd64 || arm64)

package transport

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// TestDatagramWriterBatches: whatever the writer merges into GSO entries
// (equal-length datagrams back to back in memory, a shorter one ending a
// run) or splits again (the fallback when the kernel refuses GSO), the
// receiver gets exactly the datagrams added, in order.
func TestDatagramWriterBatches(t *testing.T) {
	for _, mode := range []string{"gso", "split", "plain"} {
		t.Run(mode, func(t *testing.T) {
			rc, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"), 4<<20, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.close()
			sc, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"), 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.close()
			w := newDatagramWriter(sc, rc.localAddr(), true).(*mmsgWriter)
			if mode == "plain" {
				w.gso = false
			} else if !w.gso {
				t.Skip("no UDP GSO on this kernel")
			}
			log := make([]byte, 1<<20)
			for i := range log {
				log[i] = byte(i * 7 / 3)
			}
			var want [][]byte
			add := func(b []byte) {
				want = append(want, b)
				w.add(b)
			}
			off := 0
			next := func(n int) []byte { b := log[off : off+n]; off += n; return b }
			for i := 0; i < 10; i++ { // a run of ten, capped by gsoMaxBytes
				add(next(7392))
			}
			add(next(1000))                     // shorter: ends the run
			add(next(1000))                     // starts a new one
			add([]byte{1, 2, 3, 4, 5, 6, 7, 8}) // control frame: copied
			off += 32                           // a hole: not contiguous
			add(next(2000))
			add(next(2000))
			add(next(3000)) // longer than the run's segments: new entry
			for i := 0; i < 100; i++ {
				add(next(1376)) // more than one batch of entries
			}
			if mode != "plain" && w.n > 12 {
				t.Fatalf("%d datagrams queued as %d entries: not merged", len(want), w.n)
			}
			if mode == "split" {
				w.gso = false
				w.split(0)
				if w.n != len(want) {
					t.Fatalf("split into %d entries, want %d", w.n, len(want))
				}
			}
			w.flush()
			if w.errors() != 0 {
				t.Fatalf("%d send errors", w.errors())
			}
			buf := make([]byte, 1<<16)
			for i, d := range want {
				rc.setReadDeadline(time.Now().Add(5 * time.Second))
				n, _, err := rc.readFrom(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if !bytes.Equal(buf[:n], d) {
					t.Fatalf("datagram %d: %d bytes, want %d", i, n, len(d))
				}
			}
		})
	}
}
