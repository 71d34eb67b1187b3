package cnc

// One-to-many broadcast buffer: the driver transmits responses, every client
// receives all of them and picks out its own (by correlation or client id).
// A slow receiver is lapped, never blocks the driver. See docs/aeron-cnc.md §3.
//
// Buffer = capacity bytes of records (a power of two) + a 128-byte trailer:
//
//	cap+0  tail intent counter (int64: where the tail is about to move)
//	cap+8  tail counter        (int64: end of the last complete record)
//	cap+16 latest counter      (int64: start of the last complete record)
//
// Record (8-byte aligned): length (int32, header included) | msg_type_id
// (int32) | message. Padding (type -1) fills the end of the buffer.
const (
	BroadcastTrailerLength = 128
	bcAlign                = 8
	bcHeaderLength         = 8

	bcTailIntentOffset = 0
	bcTailOffset       = 8
	bcLatestOffset     = 16
)

func broadcastCapacity(b []byte) (int, error) {
	capacity := len(b) - BroadcastTrailerLength
	if !isPow2(capacity) || capacity < 2*bcHeaderLength {
		return 0, malformed("broadcast capacity %d not a power of two", capacity)
	}
	if !aligned8(b) {
		return 0, malformed("broadcast buffer not 8-byte aligned")
	}
	return capacity, nil
}

// Transmitter writes records to a broadcast buffer (driver side; one
// transmitter per buffer).
type Transmitter struct {
	b        []byte
	capacity int
}

// NewTransmitter validates b and returns a transmitter.
func NewTransmitter(b []byte) (*Transmitter, error) {
	c, err := broadcastCapacity(b)
	if err != nil {
		return nil, err
	}
	return &Transmitter{b: b, capacity: c}, nil
}

// MaxMessageLength is the longest message Transmit accepts.
func (t *Transmitter) MaxMessageLength() int { return t.capacity / 8 }

// Transmit appends one record.
func (t *Transmitter) Transmit(typeID int32, msg []byte) error {
	if typeID < 1 {
		return malformed("record type %d", typeID)
	}
	if len(msg) > t.MaxMessageLength() {
		return ErrTooLong
	}
	tail := LoadInt64(t.b, t.capacity+bcTailOffset)
	off := int(tail & int64(t.capacity-1))
	recLen := len(msg) + bcHeaderLength
	aligned := align(recLen, bcAlign)
	newTail := tail + int64(aligned)
	toEnd := t.capacity - off
	if toEnd < aligned {
		StoreInt64(t.b, t.capacity+bcTailIntentOffset, newTail+int64(toEnd))
		le.PutUint32(t.b[off+4:], uint32(0xffffffff))
		le.PutUint32(t.b[off:], uint32(toEnd))
		tail += int64(toEnd)
		off = 0
	} else {
		StoreInt64(t.b, t.capacity+bcTailIntentOffset, newTail)
	}
	le.PutUint32(t.b[off:], uint32(recLen))
	le.PutUint32(t.b[off+4:], uint32(typeID))
	copy(t.b[off+bcHeaderLength:], msg)
	StoreInt64(t.b, t.capacity+bcLatestOffset, tail)
	StoreInt64(t.b, t.capacity+bcTailOffset, tail+int64(aligned))
	return nil
}

// Receiver reads a broadcast buffer (client side). It starts at the latest
// record, as Aeron's clients do, and copies each record out before checking
// it was not overwritten meanwhile.
type Receiver struct {
	b        []byte
	capacity int
	next     int64
	scratch  []byte
	// Lapped counts how often the transmitter overtook this receiver
	// (records were lost to it).
	Lapped int
}

// NewReceiver validates b and returns a receiver positioned at the latest
// record.
func NewReceiver(b []byte) (*Receiver, error) {
	c, err := broadcastCapacity(b)
	if err != nil {
		return nil, err
	}
	r := &Receiver{b: b, capacity: c, scratch: make([]byte, 0, 4096)}
	r.next = LoadInt64(b, c+bcLatestOffset)
	return r, nil
}

// SkipToTail moves the receiver past every record already transmitted.
func (r *Receiver) SkipToTail() { r.next = LoadInt64(r.b, r.capacity+bcTailOffset) }

// Receive hands the next record, if any, to handler. It returns whether a
// record was delivered; ErrMalformed for an impossible record; ErrLapped if
// the transmitter overwrote records this receiver had not read (the
// receiver then continues from the latest record).
func (r *Receiver) Receive(handler func(typeID int32, msg []byte)) (bool, error) {
	tail := LoadInt64(r.b, r.capacity+bcTailOffset)
	cursor := r.next
	if tail <= cursor {
		return false, nil
	}
	lapped := false
	if !r.valid(cursor) {
		r.Lapped++
		lapped = true
		cursor = LoadInt64(r.b, r.capacity+bcLatestOffset)
	}
	mask := int64(r.capacity - 1)
	off := int(cursor & mask)
	recLen := int(int32(le.Uint32(r.b[off:])))
	typeID := int32(le.Uint32(r.b[off+4:]))
	if typeID == PaddingTypeID {
		if recLen <= 0 || recLen%bcAlign != 0 || recLen > r.capacity-off {
			return false, malformed("broadcast padding length %d at %d", recLen, off)
		}
		cursor += int64(recLen)
		off = 0
		recLen = int(int32(le.Uint32(r.b[0:])))
		typeID = int32(le.Uint32(r.b[4:]))
	}
	if recLen < bcHeaderLength || recLen > r.capacity-off {
		if !r.valid(cursor) {
			r.Lapped++
			r.next = LoadInt64(r.b, r.capacity+bcLatestOffset)
			return false, ErrLapped
		}
		return false, malformed("broadcast record length %d at %d", recLen, off)
	}
	r.scratch = append(r.scratch[:0], r.b[off+bcHeaderLength:off+recLen]...)
	r.next = cursor + int64(align(recLen, bcAlign))
	if !r.valid(cursor) {
		r.Lapped++
		r.next = LoadInt64(r.b, r.capacity+bcLatestOffset)
		return false, ErrLapped
	}
	if lapped {
		handler(typeID, r.scratch)
		return true, ErrLapped
	}
	handler(typeID, r.scratch)
	return true, nil
}

func (r *Receiver) valid(cursor int64) bool {
	return cursor+int64(r.capacity) > LoadInt64(r.b, r.capacity+bcTailIntentOffset)
}

// BroadcastRecord is one record found by ScanBroadcast.
type BroadcastRecord struct {
	Offset int
	TypeID int32
	Msg    []byte
}

// ScanBroadcast decodes every record still present in a broadcast buffer
// that has not wrapped (tail <= capacity), from offset 0 to the tail:
// what a driver has sent since it started. For inspection and tests.
func ScanBroadcast(b []byte) ([]BroadcastRecord, error) {
	c, err := broadcastCapacity(b)
	if err != nil {
		return nil, err
	}
	tail := LoadInt64(b, c+bcTailOffset)
	if tail < 0 || tail > int64(c) {
		return nil, malformed("broadcast tail %d (wrapped or corrupt; capacity %d)", tail, c)
	}
	var out []BroadcastRecord
	for off := 0; off < int(tail); {
		recLen := int(int32(le.Uint32(b[off:])))
		if recLen < bcHeaderLength || recLen > int(tail)-off {
			return out, malformed("broadcast record length %d at %d", recLen, off)
		}
		typeID := int32(le.Uint32(b[off+4:]))
		if typeID != PaddingTypeID {
			out = append(out, BroadcastRecord{Offset: off, TypeID: typeID, Msg: b[off+bcHeaderLength : off+recLen]})
		}
		off += align(recLen, bcAlign)
	}
	return out, nil
}
