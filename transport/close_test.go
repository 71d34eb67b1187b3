package transport

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentSubscriptionClose: Subscription.Close called from many
// goroutines at once retires the subscription once — its counters are not
// added twice to the driver's and the endpoint is unsubscribed once — for
// UDP and IPC.
func TestConcurrentSubscriptionClose(t *testing.T) {
	for _, channel := range []string{"aeron:udp?endpoint=127.0.0.1:0", "aeron:ipc"} {
		t.Run(channel, func(t *testing.T) {
			checkNoLeak(t)
			d := newTestDriver(t, testConfig())
			c := collect(t, d, channel, 3)
			pubCh := channel
			if channel != "aeron:ipc" {
				pubCh = "aeron:udp?endpoint=" + c.sub.LocalAddr()
			}
			pub, err := d.AddPublication(pubCh, 3)
			if err != nil {
				t.Fatal(err)
			}
			offerAll(t, pub, "a", "b", "c")
			eventually(t, 10*time.Second, "delivery", func() bool { return c.count() == 3 })
			pub.Close()
			before := d.Stats()
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if err := c.sub.Close(); err != nil {
						t.Error(err)
					}
				}()
			}
			close(start)
			wg.Wait()
			c.close()
			after := d.Stats()
			if after.Subscriptions != 0 || after.FramesReceived != before.FramesReceived ||
				after.SMsSent < before.SMsSent || after.SetupsReceived != before.SetupsReceived {
				t.Fatalf("before %+v\nafter %+v", before, after)
			}
			if st := c.sub.Stats(); st.MessagesDelivered != 3 {
				t.Fatalf("subscription stats after close: %+v", st)
			}
		})
	}
}

// TestDriverCloseDrains: Driver.Close lets its publications send what was
// offered and end the stream — the subscriber gets every message and sees
// end of stream — and returns within the linger when nobody acknowledges.
func TestDriverCloseDrains(t *testing.T) {
	checkNoLeak(t)
	cfg := testConfig()
	ds := newTestDriver(t, cfg)
	c := collect(t, ds, "aeron:udp?endpoint=127.0.0.1:0|rcv-wnd=65536", 4)
	dp, err := NewDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := dp.AddPublication("aeron:udp?endpoint="+c.sub.LocalAddr(), 4)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]string, 3000)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("%04d%s", i, strings.Repeat("x", 500))
	}
	offerAll(t, pub, msgs...)
	if st := pub.Stats(); st.SenderPosition >= st.Position {
		t.Logf("everything sent before Close (%d/%d): the drain is not exercised", st.SenderPosition, st.Position)
	}
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every message", func() bool { return c.count() == len(msgs) })
	eventually(t, 10*time.Second, "end of stream", func() bool {
		_, _, _, un := c.snapshot()
		return len(un) == 1 && un[0].EndOfStream
	})
	got, _, _, _ := c.snapshot()
	for i := range got {
		if got[i] != msgs[i] {
			t.Fatalf("message %d differs", i)
		}
	}

	// Nobody acknowledges (the subscriber's driver vanished without a
	// word): Close gives up after the linger.
	ds2, err := NewDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2 := collect(t, ds2, "aeron:udp?endpoint=127.0.0.1:0", 4)
	dp2 := newTestDriver(t, cfg)
	pub2, _ := dp2.AddPublication("aeron:udp?endpoint="+c2.sub.LocalAddr(), 4)
	offerAll(t, pub2, "x")
	eventually(t, 10*time.Second, "x", func() bool { return c2.count() == 1 })
	c2.close()
	ds2.Close() // closes its sockets: no end-of-stream status message
	if _, err := pub2.Offer([]byte("never acknowledged")); err != nil {
		t.Fatalf("offer while still connected: %v", err)
	}
	start := time.Now()
	dp2.Close()
	if el := time.Since(start); el > cfg.PublicationLinger+time.Second {
		t.Fatalf("Close took %v, linger %v", el, cfg.PublicationLinger)
	}
}
