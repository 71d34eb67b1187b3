package aeronclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
)

// TestExternalDriver runs the client against a media driver that is
// already running in $STEADFAST_AERON_DIR (Aeron's aeronmd, or ours): IPC
// and UDP round trips with small and fragmented messages and a term
// rotation. It is skipped when the variable is unset (CI has no aeronmd);
// the README says how to run it by hand.
func TestExternalDriver(t *testing.T) {
	dir := os.Getenv("STEADFAST_AERON_DIR")
	if dir == "" {
		t.Skip("STEADFAST_AERON_DIR not set: no external media driver to test against")
	}
	c, err := Connect(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ch := range []string{"aeron:ipc?term-length=64k", "aeron:udp?endpoint=127.0.0.1:40455|term-length=64k|mtu=1408"} {
		t.Run(ch, func(t *testing.T) { roundTrip(t, c, c, ch, 3000) })
	}
}

// roundTrip publishes n messages of varied sizes (some fragmented) through
// pc and checks that sc's subscription receives them all, in order.
func roundTrip(t *testing.T, pc, sc *Client, channel string, n int) {
	t.Helper()
	const stream = 7001
	var avail atomic.Int32
	sub, err := sc.AddSubscription(channel, stream, WithImageHandlers(
		func(transport.Image) { avail.Add(1) }, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := pc.AddPublication(channel, stream)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgFor := func(i int) []byte {
		size := 8 + (i*37)%200
		if i%50 == 0 {
			size = 5000 + i // fragmented (MTU 1408)
		}
		return bytes.Repeat([]byte{byte(i)}, size)
	}
	next := 0
	got := 0
	var lastPos int64
	for got < n {
		if ctx.Err() != nil {
			t.Fatalf("timed out: sent %d received %d (connected %v, limit %d, pos %d)", next, got, pub.IsConnected(), pub.PositionLimit(), pub.Position())
		}
		for next < n {
			pos, err := pub.Offer(msgFor(next))
			if errors.Is(err, transport.ErrBackPressured) || errors.Is(err, transport.ErrNotConnected) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if pos <= lastPos {
				t.Fatalf("position went from %d to %d", lastPos, pos)
			}
			lastPos = pos
			next++
		}
		sub.Poll(func(msg []byte, h transport.Header) {
			if want := msgFor(got); !bytes.Equal(msg, want) {
				t.Fatalf("message %d: %d bytes, want %d (%s)", got, len(msg), len(want), fmt.Sprint(h))
			}
			got++
		}, 100)
	}
	if lastPos < 3*64*1024 {
		t.Errorf("only %d bytes: no term rotation exercised", lastPos)
	}
	if n := avail.Load(); n != 1 {
		t.Errorf("%d images available", n)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.LocalAddr().(*net.UDPAddr).Port
}
