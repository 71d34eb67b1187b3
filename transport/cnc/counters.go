package cnc

import "fmt"

// Counters: two parallel arrays in the CnC file. See docs/aeron-cnc.md §4.
//
// Metadata record, 512 bytes per counter id:
//
//	  0 state (int32: 0 unused, 1 allocated, -1 reclaimed)
//	  4 type_id (int32)
//	  8 free_for_reuse_deadline_ms (int64)
//	 16 key (112 bytes, layout by type)
//	128 label_length (int32)
//	132 label (380 bytes)
//
// Value record, 128 bytes per counter id:
//
//	0 value (int64)   8 registration_id   16 owner_id   24 reference_id
const (
	CounterMetadataLength = 512
	CounterValueLength    = 128
	CounterMaxKeyLength   = 112
	CounterMaxLabelLength = 380

	ctrOffState    = 0
	ctrOffType     = 4
	ctrOffDeadline = 8
	ctrOffKey      = 16
	ctrOffLabelLen = 128
	ctrOffLabel    = 132

	ctrOffValue        = 0
	ctrOffRegistration = 8
	ctrOffOwner        = 16
	ctrOffReference    = 24

	// Counter record states.
	CounterUnused    = 0
	CounterAllocated = 1
	CounterReclaimed = -1
)

// Counter type ids (append-only; Aeron's numbering).
const (
	TypeSystem               = 0
	TypePublisherLimit       = 1
	TypeSenderPosition       = 2
	TypeReceiverHWM          = 3
	TypeSubscriberPosition   = 4
	TypeReceiverPosition     = 5
	TypeSendChannelStatus    = 6
	TypeReceiveChannelStatus = 7
	TypeSenderLimit          = 9
	TypePerImage             = 10
	TypeClientHeartbeat      = 11
	TypePublisherPosition    = 12
	TypeSenderBPE            = 13
	TypeLocalSockAddr        = 14
)

// Counters is a view of the counters metadata and values buffers.
type Counters struct {
	meta, values []byte
	max          int // number of counter ids
}

// NewCounters validates the two buffers and returns a view.
func NewCounters(meta, values []byte) (*Counters, error) {
	if len(values)%CounterValueLength != 0 || len(meta)%CounterMetadataLength != 0 {
		return nil, malformed("counters buffers %d/%d not multiples of %d/%d", len(meta), len(values), CounterMetadataLength, CounterValueLength)
	}
	n := len(values) / CounterValueLength
	if len(meta)/CounterMetadataLength < n {
		return nil, malformed("counters metadata %d bytes too short for %d values", len(meta), n)
	}
	if !aligned8(meta) || !aligned8(values) {
		return nil, malformed("counters buffers not 8-byte aligned")
	}
	return &Counters{meta: meta, values: values, max: n}, nil
}

// MaxCounters is the number of counter ids the buffers hold.
func (c *Counters) MaxCounters() int { return c.max }

func (c *Counters) check(id int32) error {
	if id < 0 || int(id) >= c.max {
		return malformed("counter id %d out of range [0,%d)", id, c.max)
	}
	return nil
}

// Counter is a decoded counter (metadata and value at one moment).
type Counter struct {
	ID             int32
	State          int32
	TypeID         int32
	Key            []byte // a copy, CounterMaxKeyLength bytes
	Label          string
	Value          int64
	RegistrationID int64
	OwnerID        int64
	ReferenceID    int64
}

// State reads a counter's record state (acquire).
func (c *Counters) State(id int32) (int32, error) {
	if err := c.check(id); err != nil {
		return 0, err
	}
	return LoadInt32(c.meta, int(id)*CounterMetadataLength+ctrOffState), nil
}

// Read decodes counter id. A label length out of range is ErrMalformed.
func (c *Counters) Read(id int32) (Counter, error) {
	if err := c.check(id); err != nil {
		return Counter{}, err
	}
	m := int(id) * CounterMetadataLength
	v := int(id) * CounterValueLength
	out := Counter{
		ID:             id,
		State:          LoadInt32(c.meta, m+ctrOffState),
		TypeID:         int32(le.Uint32(c.meta[m+ctrOffType:])),
		Key:            append([]byte(nil), c.meta[m+ctrOffKey:m+ctrOffKey+CounterMaxKeyLength]...),
		Value:          LoadInt64(c.values, v+ctrOffValue),
		RegistrationID: LoadInt64(c.values, v+ctrOffRegistration),
		OwnerID:        LoadInt64(c.values, v+ctrOffOwner),
		ReferenceID:    LoadInt64(c.values, v+ctrOffReference),
	}
	ll := int(int32(le.Uint32(c.meta[m+ctrOffLabelLen:])))
	if ll < 0 || ll > CounterMaxLabelLength {
		return out, malformed("counter %d label length %d", id, ll)
	}
	out.Label = string(c.meta[m+ctrOffLabel : m+ctrOffLabel+ll])
	return out, nil
}

// ForEach calls f for every allocated counter, in id order, stopping at
// the first never-used record (ids are handed out from 0 upwards).
// Records that fail to decode are reported through f's error argument.
func (c *Counters) ForEach(f func(Counter, error)) {
	for id := int32(0); int(id) < c.max; id++ {
		st := LoadInt32(c.meta, int(id)*CounterMetadataLength+ctrOffState)
		if st == CounterUnused {
			return
		}
		if st != CounterAllocated {
			continue
		}
		f(c.Read(id))
	}
}

// Value is an acquire load of counter id's value; ids are validated.
func (c *Counters) Value(id int32) (int64, error) {
	if err := c.check(id); err != nil {
		return 0, err
	}
	return LoadInt64(c.values, int(id)*CounterValueLength+ctrOffValue), nil
}

// Slot returns the 128-byte value record of counter id: callers keep it to
// load and store the value (offset 0) without re-validating the id.
func (c *Counters) Slot(id int32) ([]byte, error) {
	if err := c.check(id); err != nil {
		return nil, err
	}
	v := int(id) * CounterValueLength
	return c.values[v : v+CounterValueLength : v+CounterValueLength], nil
}

// AppendToLabel appends s to counter id's label, cutting it at the maximum
// label length (clients add their name/version to their heartbeat counter).
func (c *Counters) AppendToLabel(id int32, s string) error {
	if err := c.check(id); err != nil {
		return err
	}
	m := int(id) * CounterMetadataLength
	ll := int(int32(le.Uint32(c.meta[m+ctrOffLabelLen:])))
	if ll < 0 || ll > CounterMaxLabelLength {
		return malformed("counter %d label length %d", id, ll)
	}
	n := copy(c.meta[m+ctrOffLabel+ll:m+ctrOffLabel+CounterMaxLabelLength], s)
	StoreInt32(c.meta, m+ctrOffLabelLen, int32(ll+n))
	return nil
}

// FindHeartbeat returns the id of the allocated client-heartbeat counter
// whose registration id (first key field) is clientID, or -1.
func (c *Counters) FindHeartbeat(clientID int64) int32 {
	for id := int32(0); int(id) < c.max; id++ {
		m := int(id) * CounterMetadataLength
		st := LoadInt32(c.meta, m+ctrOffState)
		if st == CounterUnused {
			break
		}
		if st == CounterAllocated && int32(le.Uint32(c.meta[m+ctrOffType:])) == TypeClientHeartbeat &&
			int64(le.Uint64(c.meta[m+ctrOffKey:])) == clientID {
			return id
		}
	}
	return -1
}

// HeartbeatActive reports whether counter id is still clientID's allocated
// heartbeat counter.
func (c *Counters) HeartbeatActive(id int32, clientID int64) bool {
	if c.check(id) != nil {
		return false
	}
	m := int(id) * CounterMetadataLength
	return LoadInt32(c.meta, m+ctrOffState) == CounterAllocated &&
		int32(le.Uint32(c.meta[m+ctrOffType:])) == TypeClientHeartbeat &&
		int64(le.Uint64(c.meta[m+ctrOffKey:])) == clientID
}

// Allocator hands out counters in a Counters view (driver side; one owner).
// Freed ids are reused after freeToReuseMs.
type Allocator struct {
	c           *Counters
	highWater   int32
	free        []int32
	freeToReuse int64
	nowMs       func() int64
}

// NewAllocator returns an allocator over c (whose buffers must be zeroed).
func NewAllocator(c *Counters, freeToReuseMs int64, nowMs func() int64) *Allocator {
	return &Allocator{c: c, freeToReuse: freeToReuseMs, nowMs: nowMs}
}

// Allocate lays out a new counter and returns its id.
func (a *Allocator) Allocate(typeID int32, key []byte, label string, registrationID, ownerID, referenceID int64) (int32, error) {
	if len(key) > CounterMaxKeyLength {
		return -1, fmt.Errorf("%w: counter key %d bytes", ErrTooLong, len(key))
	}
	if len(label) > CounterMaxLabelLength {
		label = label[:CounterMaxLabelLength]
	}
	id := int32(-1)
	now := a.nowMs()
	for i, f := range a.free {
		m := int(f) * CounterMetadataLength
		if int64(le.Uint64(a.c.meta[m+ctrOffDeadline:])) <= now {
			id = f
			a.free = append(a.free[:i], a.free[i+1:]...)
			break
		}
	}
	if id < 0 {
		if int(a.highWater) >= a.c.max {
			return -1, fmt.Errorf("%w: no counter ids left (%d)", ErrFull, a.c.max)
		}
		id = a.highWater
		a.highWater++
	}
	m := int(id) * CounterMetadataLength
	v := int(id) * CounterValueLength
	StoreInt64(a.c.values, v+ctrOffValue, 0)
	StoreInt64(a.c.values, v+ctrOffRegistration, registrationID)
	StoreInt64(a.c.values, v+ctrOffOwner, ownerID)
	StoreInt64(a.c.values, v+ctrOffReference, referenceID)
	le.PutUint32(a.c.meta[m+ctrOffType:], uint32(typeID))
	le.PutUint64(a.c.meta[m+ctrOffDeadline:], uint64(1<<63-1))
	clear(a.c.meta[m+ctrOffKey : m+ctrOffKey+CounterMaxKeyLength])
	copy(a.c.meta[m+ctrOffKey:], key)
	clear(a.c.meta[m+ctrOffLabel : m+ctrOffLabel+CounterMaxLabelLength])
	copy(a.c.meta[m+ctrOffLabel:], label)
	le.PutUint32(a.c.meta[m+ctrOffLabelLen:], uint32(len(label)))
	StoreInt32(a.c.meta, m+ctrOffState, CounterAllocated)
	return id, nil
}

// Free reclaims counter id; it may be reused after the reuse timeout.
func (a *Allocator) Free(id int32) error {
	if err := a.c.check(id); err != nil {
		return err
	}
	m := int(id) * CounterMetadataLength
	le.PutUint64(a.c.meta[m+ctrOffDeadline:], uint64(a.nowMs()+a.freeToReuse))
	StoreInt32(a.c.meta, m+ctrOffState, CounterReclaimed)
	a.free = append(a.free, id)
	return nil
}
