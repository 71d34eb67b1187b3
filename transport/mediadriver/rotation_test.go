package mediadriver

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
)

// TestUDPImageLogsRotate: messages of mixed sizes (fragmented ones
// included) over UDP through the driver for many times the three
// partitions of 64 KiB terms, to two subscriptions (one joining late):
// each gets every message from its join on, intact and in order, though
// the image logs are reused without being cleaned.
func TestUDPImageLogsRotate(t *testing.T) {
	_, c, channel := clientOnDriver(t, "|mtu=1408|term-length=64k")
	var err error
	subs := make([]*aeronclient.Subscription, 2)
	if subs[0], err = c.AddSubscription(channel, 9); err != nil {
		t.Fatal(err)
	}
	pub := connectedPublication(t, c, channel, 9)
	rng := rand.New(rand.NewPCG(3, 3))
	msg := func(i int) []byte {
		n := 8 + (i*7919)%200
		if i%17 == 0 {
			n = 1400 + (i*31)%(8<<10-1400) // fragmented, up to term/8
		}
		b := bytes.Repeat([]byte{byte(i)}, n)
		copy(b, fmt.Sprintf("%d|", i))
		return b
	}
	const total = 6000 // about 20 terms
	got := make([][]string, 2)
	next := []int{0, -1} // the next message each expects; -1: not joined
	var bad error
	poll := func(k int) int {
		return subs[k].Poll(func(m []byte, _ transport.Header) {
			var i int
			if _, err := fmt.Sscanf(string(m), "%d|", &i); err != nil || (next[k] >= 0 && i != next[k]) || !bytes.Equal(m, msg(i)) {
				if bad == nil {
					bad = fmt.Errorf("subscription %d: message %q… (%d bytes) where %d was due", k, m[:min(len(m), 12)], len(m), next[k])
				}
				return
			}
			next[k] = i + 1
			got[k] = append(got[k], "")
		}, 64)
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < total; {
		if i == total/3 && subs[1] == nil {
			if subs[1], err = c.AddSubscription(channel, 9); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pub.Offer(msg(i)); err == nil {
			i++
		} else if rng.IntN(2) == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		for k := range subs {
			if subs[k] != nil {
				poll(k)
			}
		}
		if bad != nil {
			t.Fatal(bad)
		}
		if time.Now().After(deadline) {
			t.Fatalf("offered %d of %d", i, total)
		}
	}
	for next[0] < total || next[1] < total {
		if poll(0)+poll(1) == 0 {
			time.Sleep(time.Millisecond)
		}
		if bad != nil {
			t.Fatal(bad)
		}
		if time.Now().After(deadline) {
			t.Fatalf("received up to %v of %d", next, total)
		}
	}
	if len(got[0]) != total || len(got[1]) < total/2 {
		t.Fatalf("received %d and %d messages", len(got[0]), len(got[1]))
	}
}
