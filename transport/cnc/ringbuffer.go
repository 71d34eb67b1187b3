package cnc

// Many-to-one ring buffer: clients (any number of producers, in any
// process) write commands, the driver's conductor (one consumer) reads them.
// See docs/aeron-cnc.md §2.
//
// Buffer = capacity bytes of records (a power of two) + a 768-byte trailer:
//
//	cap+128 tail position        (int64, producers CAS it)
//	cap+256 head cache position  (int64, producers' cached head)
//	cap+384 head position        (int64, consumer)
//	cap+512 correlation counter  (int64, fetch-and-add by clients)
//	cap+640 consumer heartbeat   (int64, driver's epoch ms)
//
// Record (8-byte aligned): length (int32, header included; negative while
// being written) | msg_type_id (int32) | message. Padding records
// (type -1) fill the end of the buffer when a record does not fit.
const (
	RingTrailerLength = 768
	ringAlign         = 8
	ringHeaderLength  = 8
	ringMinCapacity   = 2 * ringHeaderLength

	rbTailOffset        = 128
	rbHeadCacheOffset   = 256
	rbHeadOffset        = 384
	rbCorrelationOffset = 512
	rbHeartbeatOffset   = 640

	// PaddingTypeID marks padding records in both ring and broadcast buffers.
	PaddingTypeID = -1
)

// RingBuffer is a view of a many-to-one ring buffer in shared memory.
type RingBuffer struct {
	b        []byte
	capacity int
	maxMsg   int
}

// NewRingBuffer validates b (capacity + trailer) and returns a view.
func NewRingBuffer(b []byte) (*RingBuffer, error) {
	capacity := len(b) - RingTrailerLength
	if !isPow2(capacity) || capacity < ringMinCapacity {
		return nil, malformed("ring buffer capacity %d not a power of two >= %d", capacity, ringMinCapacity)
	}
	if !aligned8(b) {
		return nil, malformed("ring buffer not 8-byte aligned")
	}
	return &RingBuffer{b: b, capacity: capacity, maxMsg: capacity / 8}, nil
}

// Capacity is the size of the record area.
func (r *RingBuffer) Capacity() int { return r.capacity }

// MaxMessageLength is the longest message Write accepts.
func (r *RingBuffer) MaxMessageLength() int { return r.maxMsg }

// Tail, Head, HeadCache, Correlation and ConsumerHeartbeat read the trailer.
func (r *RingBuffer) Tail() int64      { return LoadInt64(r.b, r.capacity+rbTailOffset) }
func (r *RingBuffer) Head() int64      { return LoadInt64(r.b, r.capacity+rbHeadOffset) }
func (r *RingBuffer) HeadCache() int64 { return LoadInt64(r.b, r.capacity+rbHeadCacheOffset) }
func (r *RingBuffer) Correlation() int64 {
	return LoadInt64(r.b, r.capacity+rbCorrelationOffset)
}
func (r *RingBuffer) ConsumerHeartbeat() int64 { return LoadInt64(r.b, r.capacity+rbHeartbeatOffset) }

// SetConsumerHeartbeat stores the consumer's liveness time (epoch ms).
func (r *RingBuffer) SetConsumerHeartbeat(ms int64) {
	StoreInt64(r.b, r.capacity+rbHeartbeatOffset, ms)
}

// NextCorrelationID hands out a unique id (clients use it for their client
// id and every command's correlation id).
func (r *RingBuffer) NextCorrelationID() int64 {
	return AddInt64(r.b, r.capacity+rbCorrelationOffset, 1)
}

// Write appends one record. It returns ErrFull when the consumer is behind,
// ErrTooLong for an oversized message, ErrMalformed for a bad type id.
func (r *RingBuffer) Write(typeID int32, msg []byte) error {
	if typeID < 1 {
		return malformed("record type %d", typeID)
	}
	if len(msg) > r.maxMsg {
		return ErrTooLong
	}
	recLen := len(msg) + ringHeaderLength
	idx, err := r.claim(recLen)
	if err != nil {
		return err
	}
	StoreInt32(r.b, idx, -int32(recLen))
	copy(r.b[idx+ringHeaderLength:], msg)
	le.PutUint32(r.b[idx+4:], uint32(typeID))
	StoreInt32(r.b, idx, int32(recLen))
	return nil
}

func (r *RingBuffer) claim(recLen int) (int, error) {
	required := align(recLen, ringAlign)
	mask := int64(r.capacity - 1)
	capacity := int64(r.capacity)
	tailOff := r.capacity + rbTailOffset
	head := LoadInt64(r.b, r.capacity+rbHeadCacheOffset)
	for {
		tail := LoadInt64(r.b, tailOff)
		if int64(required) > capacity-(tail-head) {
			head = r.Head()
			if int64(required) > capacity-(tail-head) {
				return 0, ErrFull
			}
			StoreInt64(r.b, r.capacity+rbHeadCacheOffset, head)
		}
		padding := int64(0)
		tailIndex := tail & mask
		toEnd := capacity - tailIndex
		if int64(required) > toEnd {
			headIndex := head & mask
			if int64(required) > headIndex {
				head = r.Head()
				headIndex = head & mask
				if int64(required) > headIndex {
					return 0, ErrFull
				}
				StoreInt64(r.b, r.capacity+rbHeadCacheOffset, head)
			}
			padding = toEnd
		}
		if CasInt64(r.b, tailOff, tail, tail+int64(required)+padding) {
			if padding != 0 {
				ti := int(tailIndex)
				StoreInt32(r.b, ti, -int32(padding))
				le.PutUint32(r.b[ti+4:], uint32(0xffffffff)) // PaddingTypeID
				StoreInt32(r.b, ti, int32(padding))
				return 0, nil
			}
			return int(tailIndex), nil
		}
	}
}

// Read hands up to limit records to handler (driver side) and zeroes and
// releases what it read. A record whose length field is impossible stops
// the read with ErrMalformed, leaving the head where it was.
func (r *RingBuffer) Read(handler func(typeID int32, msg []byte), limit int) (int, error) {
	head := r.Head()
	headIndex := int(head & int64(r.capacity-1))
	block := r.capacity - headIndex
	read, bytesRead := 0, 0
	var err error
	for bytesRead < block && read < limit {
		idx := headIndex + bytesRead
		recLen := int(LoadInt32(r.b, idx))
		if recLen <= 0 {
			break
		}
		if recLen < ringHeaderLength || align(recLen, ringAlign) > block-bytesRead {
			err = malformed("ring record length %d at %d", recLen, idx)
			break
		}
		bytesRead += align(recLen, ringAlign)
		typeID := int32(le.Uint32(r.b[idx+4:]))
		if typeID == PaddingTypeID {
			continue
		}
		read++
		handler(typeID, r.b[idx+ringHeaderLength:idx+recLen])
	}
	if bytesRead != 0 {
		clear(r.b[headIndex : headIndex+bytesRead])
		StoreInt64(r.b, r.capacity+rbHeadOffset, head+int64(bytesRead))
	}
	return read, err
}
