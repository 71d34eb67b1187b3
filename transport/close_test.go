package transport

import (
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
