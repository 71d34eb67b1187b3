package mediadriver

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// TestHostileCommands: a client that writes garbage into the to-driver
// ring buffer (random command types with random, truncated or oversized
// bodies, absurd lengths and counter ids) and scribbles over its counters
// and log buffers must not crash the driver, which keeps answering
// well-formed commands.
func TestHostileCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "aeron")
	d, err := New(Config{Dir: dir, IPCTermLength: 64 << 10, TermLength: 64 << 10, ToDriverBufferLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m, err := cnc.MapFile(filepath.Join(dir, cnc.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := cnc.Open(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	rx, _ := cnc.NewReceiver(c.ToClients)
	rng := rand.New(rand.NewPCG(7, 7))
	types := []int32{cnc.CmdAddPublication, cnc.CmdRemovePublication, cnc.CmdAddExclusivePublication,
		cnc.CmdAddSubscription, cnc.CmdRemoveSubscription, cnc.CmdClientKeepalive, cnc.CmdClientClose,
		cnc.CmdAddCounter, cnc.CmdTerminateDriver, 0x7fff}
	channels := []string{"aeron:ipc", "aeron:ipc?term-length=64k", "aeron:udp?endpoint=127.0.0.1:0", "aeron:ipc?term-length=3",
		"aeron:udp", "bogus", "aeron:ipc?mtu=99999999999", ""}
	for i := 0; i < 5000; i++ {
		typ := types[rng.IntN(len(types))]
		var body []byte
		client := int64(rng.IntN(4))
		corr := c.ToDriver.NextCorrelationID()
		switch rng.IntN(4) {
		case 0: // random bytes
			body = make([]byte, rng.IntN(200))
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
		case 1: // well-formed add publication/subscription with odd channels
			ch := channels[rng.IntN(len(channels))]
			if typ == cnc.CmdAddSubscription {
				body = cnc.SubscriptionCommand{Correlated: cnc.Correlated{ClientID: client, CorrelationID: corr},
					RegistrationCorrelationID: -1, StreamID: int32(rng.IntN(3)), Channel: ch}.Encode(nil)
			} else {
				body = cnc.PublicationCommand{Correlated: cnc.Correlated{ClientID: client, CorrelationID: corr},
					StreamID: int32(rng.IntN(3)), Channel: ch}.Encode(nil)
			}
		case 2: // remove of a random (often unknown) registration
			body = cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: client, CorrelationID: corr},
				RegistrationID: int64(rng.IntN(int(corr) + 1))}.Encode(nil)
		case 3: // a channel length field that lies
			body = cnc.Correlated{ClientID: client, CorrelationID: corr}.Encode(nil)
			body = binary.LittleEndian.AppendUint32(body, 1)
			body = binary.LittleEndian.AppendUint32(body, uint32(rng.Uint32()))
		}
		for c.ToDriver.Write(typ, body) != nil {
			time.Sleep(100 * time.Microsecond)
		}
		if i%50 == 0 {
			// Scribble over counter values (positions, limits, heartbeats).
			for k := 0; k < 5; k++ {
				slot, err := c.Counters.Slot(int32(rng.IntN(32)))
				if err == nil {
					cnc.StoreInt64(slot, 0, int64(rng.Uint64()))
				}
			}
		}
		for {
			ok, _ := rx.Receive(func(int32, []byte) {})
			if !ok {
				break
			}
		}
	}
	// Still alive and answering: a fresh client's keepalive gets its
	// heartbeat counter.
	id := c.ToDriver.NextCorrelationID() + 1000
	if err := c.ToDriver.Write(cnc.CmdClientKeepalive, cnc.Correlated{ClientID: id, CorrelationID: id}.Encode(nil)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Counters.FindHeartbeat(id) < 0 {
		if time.Now().After(deadline) {
			t.Fatal("driver stopped answering after hostile input")
		}
		select {
		case <-d.Done():
			t.Fatal("driver stopped")
		case <-time.After(time.Millisecond):
		}
	}
}
