package cnc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// smallMeta is a small but valid layout for unit tests and fuzz seeds.
func smallMeta() Metadata {
	return Metadata{
		ToDriverLength:          1024 + RingTrailerLength,
		ToClientsLength:         1024 + BroadcastTrailerLength,
		CountersMetadataLength:  8 * CounterMetadataLength,
		CountersValuesLength:    8 * CounterValueLength,
		ErrorLogLength:          64,
		ClientLivenessTimeoutNs: 10e9,
		StartTimestampMs:        1234,
		Pid:                     42,
	}
}

func newSmall(t testing.TB) *CnC {
	m := smallMeta()
	c, err := Layout(AlignedCopy(make([]byte, FileLength(m, 4096))), m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMetadataRoundTripAndErrors(t *testing.T) {
	c := newSmall(t)
	m, err := DecodeMetadata(c.Raw())
	if err != nil || m.Pid != 42 || m.Version != Version || m.StartTimestampMs != 1234 {
		t.Fatalf("%+v %v", m, err)
	}
	b := AlignedCopy(c.Raw())
	StoreInt32(b, 0, 0)
	if _, err := Open(b); !errors.Is(err, ErrNotReady) {
		t.Errorf("version 0: %v", err)
	}
	StoreInt32(b, 0, 1<<16)
	if _, err := Open(b); !errors.Is(err, ErrVersion) {
		t.Errorf("version 1.0.0: %v", err)
	}
	StoreInt32(b, 0, Version)
	binary.LittleEndian.PutUint32(b[offToDriverLen:], 1000+RingTrailerLength)
	if _, err := Open(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("ring not a power of two: %v", err)
	}
	binary.LittleEndian.PutUint32(b[offToDriverLen:], 1<<29)
	if _, err := Open(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("ring beyond file: %v", err)
	}
	if _, err := Open(b[:100]); !errors.Is(err, ErrNotReady) {
		t.Errorf("short: %v", err)
	}
}

func TestRingBufferWriteReadWrap(t *testing.T) {
	c := newSmall(t)
	rb := c.ToDriver
	if rb.MaxMessageLength() != 128 {
		t.Fatalf("max %d", rb.MaxMessageLength())
	}
	if err := rb.Write(1, make([]byte, 129)); !errors.Is(err, ErrTooLong) {
		t.Errorf("oversized: %v", err)
	}
	if err := rb.Write(0, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("type 0: %v", err)
	}
	// Fill and drain many times so records wrap with padding.
	var next, want int
	for round := 0; round < 200; round++ {
		for {
			msg := bytes.Repeat([]byte{byte(next)}, next%100+1)
			if err := rb.Write(int32(next%50+1), msg); err != nil {
				if !errors.Is(err, ErrFull) {
					t.Fatal(err)
				}
				break
			}
			next++
		}
		_, err := rb.Read(func(typ int32, msg []byte) {
			if typ != int32(want%50+1) || len(msg) != want%100+1 || msg[0] != byte(want) {
				t.Fatalf("record %d: type %d len %d", want, typ, len(msg))
			}
			want++
		}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		// Second read picks up the part before the wrap.
		if _, err := rb.Read(func(typ int32, msg []byte) { want++ }, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if want != next || want < 1000 {
		t.Errorf("wrote %d read %d", next, want)
	}
	if rb.Head() != rb.Tail() {
		t.Errorf("head %d tail %d", rb.Head(), rb.Tail())
	}
}

// TestRingBufferConcurrentProducers: records from four producers all
// arrive, each producer's in order.
func TestRingBufferConcurrentProducers(t *testing.T) {
	c := newSmall(t)
	rb := c.ToDriver
	const producers, per = 4, 2000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, 12)
			for i := 0; i < per; {
				binary.LittleEndian.PutUint32(msg, uint32(p))
				binary.LittleEndian.PutUint64(msg[4:], uint64(i))
				if rb.Write(7, msg) == nil {
					i++
				}
			}
		}()
	}
	seen := make([]int, producers)
	total := 0
	for total < producers*per {
		n, err := rb.Read(func(typ int32, msg []byte) {
			p := binary.LittleEndian.Uint32(msg)
			i := int(binary.LittleEndian.Uint64(msg[4:]))
			if i != seen[p] {
				t.Errorf("producer %d: got %d want %d", p, i, seen[p])
			}
			seen[p] = i + 1
		}, 100)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	wg.Wait()
}

func TestCorrelationAndHeartbeat(t *testing.T) {
	rb := newSmall(t).ToDriver
	a, b := rb.NextCorrelationID(), rb.NextCorrelationID()
	if a != 0 || b != 1 || rb.Correlation() != 2 {
		t.Errorf("%d %d %d", a, b, rb.Correlation())
	}
	rb.SetConsumerHeartbeat(99)
	if rb.ConsumerHeartbeat() != 99 {
		t.Error("heartbeat")
	}
}

func TestBroadcastTransmitReceiveAndLap(t *testing.T) {
	c := newSmall(t)
	tx, err := NewTransmitter(c.ToClients)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := NewReceiver(c.ToClients)
	if err != nil {
		t.Fatal(err)
	}
	recv := func() (out []string) {
		for {
			ok, err := rx.Receive(func(typ int32, msg []byte) { out = append(out, fmt.Sprintf("%d:%s", typ, msg)) })
			if err != nil && !errors.Is(err, ErrLapped) {
				t.Fatal(err)
			}
			if !ok && err == nil {
				return out
			}
		}
	}
	// In step: every record arrives, across many wraps.
	for i := 0; i < 500; i++ {
		msg := fmt.Sprintf("r%d-%s", i, bytes.Repeat([]byte("x"), i%90))
		if err := tx.Transmit(int32(i%9+1), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := recv()
		if want := fmt.Sprintf("%d:%s", i%9+1, msg); len(got) != 1 || got[0] != want {
			t.Fatalf("step %d: %q want %q", i, got, want)
		}
	}
	// Lapped: the transmitter writes far more than the capacity; the
	// receiver notices, jumps to the latest record and carries on.
	for i := 0; i < 100; i++ {
		if err := tx.Transmit(3, bytes.Repeat([]byte{'y'}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	got := recv()
	if rx.Lapped == 0 || len(got) == 0 || len(got) > 10 {
		t.Errorf("lapped %d, got %d records", rx.Lapped, len(got))
	}
	if err := tx.Transmit(1, make([]byte, tx.MaxMessageLength()+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("oversized: %v", err)
	}
}

func TestCountersAllocateFreeReuse(t *testing.T) {
	c := newSmall(t)
	now := int64(1000)
	a := NewAllocator(c.Counters, 1000, func() int64 { return now })
	key := binary.LittleEndian.AppendUint64(nil, 77)
	id, err := a.Allocate(TypeClientHeartbeat, key, "client-heartbeat: id=77", 77, 0, 0)
	if err != nil || id != 0 {
		t.Fatal(id, err)
	}
	if got := c.Counters.FindHeartbeat(77); got != 0 || !c.Counters.HeartbeatActive(0, 77) || c.Counters.FindHeartbeat(78) != -1 {
		t.Errorf("find heartbeat %d", got)
	}
	if err := c.Counters.AppendToLabel(id, " name=x"); err != nil {
		t.Fatal(err)
	}
	ctr, err := c.Counters.Read(id)
	if err != nil || ctr.Label != "client-heartbeat: id=77 name=x" || ctr.TypeID != TypeClientHeartbeat || ctr.RegistrationID != 77 {
		t.Errorf("%+v %v", ctr, err)
	}
	for i := 1; i < 8; i++ {
		if _, err := a.Allocate(TypeSystem, nil, fmt.Sprint(i), 0, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Allocate(TypeSystem, nil, "full", 0, 0, 0); !errors.Is(err, ErrFull) {
		t.Errorf("full: %v", err)
	}
	if err := a.Free(id); err != nil {
		t.Fatal(err)
	}
	if c.Counters.HeartbeatActive(id, 77) {
		t.Error("freed heartbeat still active")
	}
	if _, err := a.Allocate(TypeSystem, nil, "early", 0, 0, 0); !errors.Is(err, ErrFull) {
		t.Errorf("reuse before timeout: %v", err)
	}
	now += 1000
	if got, err := a.Allocate(TypeSystem, nil, "reused", 0, 0, 0); err != nil || got != id {
		t.Errorf("reuse: %d %v", got, err)
	}
	if _, err := c.Counters.Read(8); !errors.Is(err, ErrMalformed) {
		t.Errorf("out of range: %v", err)
	}
}

func TestProtocolRoundTrips(t *testing.T) {
	cases := []struct {
		typ int32
		enc []byte
		dec any
	}{
		{RspOnPublicationReady, PublicationReady{1, 2, 3, 4, 5, 6, "/x/publications/2.logbuffer"}.Encode(nil),
			PublicationReady{1, 2, 3, 4, 5, 6, "/x/publications/2.logbuffer"}},
		{RspOnSubscriptionReady, SubscriptionReady{9, -1}.Encode(nil), SubscriptionReady{9, -1}},
		{RspOnAvailableImage, ImageReady{1, 2, 3, 4, 5, "/a/b.logbuffer", "127.0.0.1:9"}.Encode(nil),
			ImageReady{1, 2, 3, 4, 5, "/a/b.logbuffer", "127.0.0.1:9"}},
		{RspOnUnavailableImage, ImageMessage{1, 2, 3, "aeron:ipc"}.Encode(nil), ImageMessage{1, 2, 3, "aeron:ipc"}},
		{RspOnError, ErrorResponse{5, ErrCodeInvalidChannel, "bad"}.Encode(nil), ErrorResponse{5, ErrCodeInvalidChannel, "bad"}},
		{RspOnOperationSuccess, EncodeInt64Response(nil, 8), int64(8)},
	}
	for _, c := range cases {
		got, err := DecodeResponse(c.typ, c.enc)
		if err != nil || got != c.dec {
			t.Errorf("%#x: %+v %v, want %+v", c.typ, got, err, c.dec)
		}
		for n := 0; n < len(c.enc); n++ {
			if _, err := DecodeResponse(c.typ, c.enc[:n]); err == nil {
				t.Errorf("%#x truncated to %d decoded", c.typ, n)
			}
		}
	}
	pc := PublicationCommand{Correlated{1, 2}, 10, "aeron:ipc"}
	if got, err := DecodePublicationCommand(pc.Encode(nil)); err != nil || got != pc {
		t.Errorf("%+v %v", got, err)
	}
	sc := SubscriptionCommand{Correlated{1, 2}, -1, 10, "aeron:udp?endpoint=localhost:1"}
	if got, err := DecodeSubscriptionCommand(sc.Encode(nil)); err != nil || got != sc {
		t.Errorf("%+v %v", got, err)
	}
	rc := RemoveCommand{Correlated{1, 2}, 3}
	if got, err := DecodeRemoveCommand(rc.Encode(nil)); err != nil || got != rc {
		t.Errorf("%+v %v", got, err)
	}
}

// TestLayoutHeartbeatBeforeVersion: a freshly laid out file carries the
// start time as its consumer heartbeat.
func TestLayoutHeartbeatBeforeVersion(t *testing.T) {
	c := newSmall(t)
	if hb := c.ToDriver.ConsumerHeartbeat(); hb != 1234 {
		t.Errorf("heartbeat %d, want the start time 1234", hb)
	}
}
