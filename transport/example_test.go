package transport_test

import (
	"context"
	"fmt"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
)

// Example sends three messages over UDP loopback and receives them.
func Example() {
	cfg := transport.DefaultConfig()
	d, err := transport.NewDriver(cfg)
	if err != nil {
		panic(err)
	}
	defer d.Close()
	sub, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 1001)
	if err != nil {
		panic(err)
	}
	pub, err := d.AddPublication("aeron:udp?endpoint="+sub.LocalAddr(), 1001)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []string{"fizz", "buzz", "fizzbuzz"} {
		for {
			if _, err := pub.Offer([]byte(m)); err == nil {
				break
			} else if err != transport.ErrNotConnected && err != transport.ErrBackPressured {
				panic(err)
			}
			time.Sleep(time.Millisecond) // not connected yet: retry
		}
	}
	got := 0
	for got < 3 && ctx.Err() == nil {
		if sub.Poll(func(msg []byte, h transport.Header) {
			fmt.Println(string(msg), h.StreamID)
			got++
		}, 10) == 0 {
			sub.Wait(ctx)
		}
	}
	// Output:
	// fizz 1001
	// buzz 1001
	// fizzbuzz 1001
}

// Example_ipc uses an in-process channel: no sockets.
func Example_ipc() {
	d, _ := transport.NewDriver(transport.DefaultConfig())
	defer d.Close()
	sub, _ := d.AddSubscription("aeron:ipc", 7)
	pub, _ := d.AddPublication("aeron:ipc", 7)
	pos, err := pub.Offer([]byte("hello"))
	fmt.Println(pos, err)
	sub.Poll(func(msg []byte, h transport.Header) { fmt.Println(string(msg), h.Position) }, 10)
	// Output:
	// 64 <nil>
	// hello 64
}
