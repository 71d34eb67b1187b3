package mediadriver

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/internal/freeport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
)

// clientOnDriver starts a driver (64 KiB terms) in a temporary directory
// and connects a client to it; both close when the test ends. channel is
// a UDP channel on a free loopback port with params appended.
func clientOnDriver(t *testing.T, params string) (d *Driver, c *aeronclient.Client, channel string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "aeron")
	d, err := New(Config{Dir: dir, TermLength: 64 << 10, IPCTermLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err = aeronclient.Connect(aeronclient.Config{Dir: dir, ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	port, err := freeport.TCPUDP()
	if err != nil {
		t.Fatal(err)
	}
	return d, c, fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d%s", port, params)
}

// connectedPublication adds an exclusive publication and waits until a
// subscriber is there.
func connectedPublication(t *testing.T, c *aeronclient.Client, channel string, stream int32) *aeronclient.Publication {
	t.Helper()
	pub, err := c.AddExclusivePublication(channel, stream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !pub.IsConnected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stream %d not connected", stream)
		}
	}
	return pub
}
