package aeronclient_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
	"github.com/steadfast-pods/steadfast/transport/mediadriver"
)

// A client of a standalone media driver (here started in-process; usually
// cmd/mediadriver or Aeron's aeronmd in another process) publishing to
// itself over IPC.
func Example() {
	dir, _ := os.MkdirTemp("", "aeron-example")
	defer os.RemoveAll(dir)
	driver, err := mediadriver.New(mediadriver.Config{Dir: filepath.Join(dir, "aeron"), IPCTermLength: 64 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer driver.Close()

	c, err := aeronclient.Connect(aeronclient.Config{Dir: filepath.Join(dir, "aeron")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	sub, _ := c.AddSubscription("aeron:ipc", 1001)
	pub, _ := c.AddPublication("aeron:ipc", 1001)

	for !pub.IsConnected() {
		time.Sleep(time.Millisecond)
	}
	if _, err := pub.Offer([]byte("hello, driver")); err != nil {
		fmt.Println(err)
		return
	}
	for sub.Poll(func(msg []byte, h transport.Header) {
		fmt.Printf("%s (position %d)\n", msg, h.Position)
	}, 10) == 0 {
		time.Sleep(time.Millisecond)
	}
	// Output: hello, driver (position 64)
}
