package mediadriver

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// TestScribbledUDPPublicationLog: a client that writes a malformed frame
// into its UDP publication's log (longer than the wire MTU allows) gets
// nothing of it onto the wire: the driver counts an error, the stream
// stops there, and the driver goes on serving other streams.
func TestScribbledUDPPublicationLog(t *testing.T) {
	d, c, channel := clientOnDriver(t, "|mtu=1408")
	dir := d.Dir()
	var got []string
	poll := func(sub *aeronclient.Subscription, n int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(got) < n {
			if sub.Poll(func(m []byte, _ transport.Header) { got = append(got, string(m)) }, 16) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: got %q", what, got)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	sub, err := c.AddSubscription(channel, 5)
	if err != nil {
		t.Fatal(err)
	}
	pub := connectedPublication(t, c, channel, 5)
	offer := func(pub *aeronclient.Publication, m string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := pub.Offer([]byte(m)); err == nil {
				return
			} else if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	offer(pub, "one")
	offer(pub, "two")
	poll(sub, 2, "before")

	// A frame of 4000 bytes where the next one goes: the client's log
	// says MTU 1408.
	logs, _ := filepath.Glob(filepath.Join(dir, "publications", "*.logbuffer"))
	if len(logs) != 1 {
		t.Fatalf("publication logs %v", logs)
	}
	m, err := cnc.MapFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := cnc.OpenLog(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	pos := pub.Position()
	term := l.Terms[int(pos/int64(l.TermLength))%cnc.PartitionCount]
	off := int(pos % int64(l.TermLength))
	copy(term[off+4:off+cnc.DataHeaderLength], l.DefaultHeader()[4:])
	cnc.StoreInt32(term, off, 4000)
	errs := cnc.LoadInt64(d.sys.errors, 0)
	for deadline := time.Now().Add(10 * time.Second); cnc.LoadInt64(d.sys.errors, 0) == errs; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("malformed frame not counted")
		}
	}

	// Another stream through the same driver still flows; nothing of the
	// scribbled one arrived.
	sub2, err := c.AddSubscription(channel, 6)
	if err != nil {
		t.Fatal(err)
	}
	pub2 := connectedPublication(t, c, channel, 6)
	offer(pub2, "three")
	poll(sub2, 3, "other stream")
	if n := cnc.LoadInt64(d.sys.errors, 0) - errs; n != 1 {
		t.Errorf("the malformed frame counted %d times, want once", n)
	}
	if sub.Poll(func(m []byte, _ transport.Header) { got = append(got, string(m)) }, 16) != 0 || fmt.Sprint(got) != "[one two three]" {
		t.Fatalf("got %q", got)
	}
	select {
	case <-d.Done():
		t.Fatal("driver stopped")
	default:
	}
}
