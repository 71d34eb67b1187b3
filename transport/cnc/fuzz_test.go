package cnc

import (
	"encoding/binary"
	"testing"
)

// Fuzz every decoder of shared memory: whatever a corrupt or hostile driver
// (or client) leaves in the file, decoding returns an error or a value,
// never a panic or an access outside the buffer (the slices are exact, so
// Go's bounds checks would turn any such access into a panic).

// exercise runs every reader over a CnC image.
func exercise(b []byte) {
	c, err := Open(b)
	if err != nil {
		return
	}
	_, _ = c.ToDriver.Read(func(int32, []byte) {}, 64)
	recs, _ := ScanBroadcast(c.ToClients)
	for _, r := range recs {
		_, _ = DecodeResponse(r.TypeID, r.Msg)
	}
	if rx, err := NewReceiver(c.ToClients); err == nil {
		rx.next = 0
		for i := 0; i < 64; i++ {
			ok, err := rx.Receive(func(typ int32, msg []byte) { _, _ = DecodeResponse(typ, msg) })
			if !ok && err == nil {
				break
			}
		}
	}
	c.Counters.ForEach(func(Counter, error) {})
	c.Counters.FindHeartbeat(1)
	_ = c.Counters.AppendToLabel(0, "x")
}

func FuzzOpenCnC(f *testing.F) {
	m := Metadata{
		ToDriverLength:         256 + RingTrailerLength,
		ToClientsLength:        256 + BroadcastTrailerLength,
		CountersMetadataLength: 2 * CounterMetadataLength,
		CountersValuesLength:   2 * CounterValueLength,
	}
	seed := AlignedCopy(make([]byte, m.Length()))
	c, _ := Layout(seed, m)
	_ = c.ToDriver.Write(CmdAddPublication, PublicationCommand{Correlated{1, 2}, 3, "aeron:ipc"}.Encode(nil))
	tx, _ := NewTransmitter(c.ToClients)
	_ = tx.Transmit(RspOnAvailableImage, ImageReady{1, 2, 3, 4, 5, "f", "s"}.Encode(nil))
	a := NewAllocator(c.Counters, 0, func() int64 { return 0 })
	_, _ = a.Allocate(TypeClientHeartbeat, binary.LittleEndian.AppendUint64(nil, 1), "hb", 1, 0, 0)
	f.Add(uint32(0), seed[:HeaderLength], false)
	f.Add(uint32(HeaderLength+256+RingTrailerLength+8), []byte{0xff, 0xff, 0, 0}, false)
	f.Fuzz(func(t *testing.T, off uint32, patch []byte, raw bool) {
		if raw { // the bytes alone as a whole file
			exercise(AlignedCopy(patch))
			return
		}
		// Corrupt the valid layout at a chosen spot, so the fuzzer gets
		// past the header checks cheaply.
		b := AlignedCopy(seed)
		copy(b[int(off)%len(b):], patch)
		exercise(b)
	})
}

func FuzzOpenLog(f *testing.F) {
	f.Add(uint32(3*TermMinLength+LogOffTermLength), []byte{0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		b := AlignedCopy(make([]byte, LogLength(TermMinLength, 4096)))
		meta := b[3*TermMinLength:]
		binary.LittleEndian.PutUint32(meta[LogOffTermLength:], TermMinLength)
		binary.LittleEndian.PutUint32(meta[LogOffPageSize:], 4096)
		binary.LittleEndian.PutUint32(meta[LogOffMTU:], 1408)
		binary.LittleEndian.PutUint32(meta[LogOffDefaultHdrLen:], DataHeaderLength)
		binary.LittleEndian.PutUint32(b[0:], 100)  // a frame in term 0
		binary.LittleEndian.PutUint32(b[128:], 40) // and another
		o := int(off) % len(b)
		copy(b[o:], patch)
		l, err := OpenLog(b)
		if err != nil {
			return
		}
		for i := range l.Terms {
			_, _ = ScanTerm(l.Terms[i])
			_ = TermOffset(l.RawTail(i), l.TermLength)
		}
		// The reader (with reassembly) over whatever the terms hold.
		rd := NewReader(l, 0)
		for k := 0; k < 8; k++ {
			if n, err := rd.Poll(func([]byte, Message) {}, 64); n == 0 || err != nil {
				break
			}
		}
		_ = l.Position(TermID(l.RawTail(0)), 0)
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(int32(RspOnAvailableImage), ImageReady{1, 2, 3, 4, 5, "abc", "src"}.Encode(nil))
	f.Add(int32(RspOnPublicationReady), PublicationReady{1, 2, 3, 4, 5, 6, "x"}.Encode(nil))
	f.Add(int32(RspOnError), ErrorResponse{1, 2, "e"}.Encode(nil))
	f.Add(int32(CmdAddSubscription), SubscriptionCommand{Correlated{1, 2}, -1, 3, "c"}.Encode(nil))
	f.Fuzz(func(t *testing.T, typ int32, b []byte) {
		_, _ = DecodeResponse(typ, b)
		_, _ = DecodePublicationCommand(b)
		_, _ = DecodeSubscriptionCommand(b)
		_, _ = DecodeRemoveCommand(b)
		_, _ = DecodeCorrelated(b)
	})
}
