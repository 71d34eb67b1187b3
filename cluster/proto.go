package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Messages between Cluster instances travel as memberlist user messages
// over SendReliable (a TCP stream per message, encrypted with the cluster
// key). SendReliable has no end-to-end acknowledgement, so every request
// carries an id and the address to reply to (the receiver may still hold an
// old address for the sender's node id), and the reply carries the id back.
//
// Layout of every message:
//
//	+-------+---------+------+-------------------------------+
//	| magic | version | type | fields (type-specific)        |
//	| 'S'   | 1       | 1 B  | uvarint integers, uvarint-    |
//	|       |         |      | length-prefixed strings/bytes |
//	+-------+---------+------+-------------------------------+
//
// Types and their fields (append only):
//
//	push       1: req, reply-to name, reply-to addr, sender node id, sender epoch, snapshot envelope
//	push ack   2: req, status, reason, held epoch, held version
//	gather     3: req, reply-to name, reply-to addr, node id asked for, want bytes (0/1)
//	gather rep 4: req, highest epoch known, held epoch, held version, has (0/1),
//	              snapshot envelope (empty unless asked for and held)
const (
	protoMagic   = 'S'
	protoVersion = 1

	msgPush      = 1
	msgPushAck   = 2
	msgGather    = 3
	msgGatherRep = 4
)

// Push ack statuses.
const (
	ackOK       = 0
	ackRejected = 1
)

var (
	errProto  = errors.New("cluster: malformed message")
	errTooBig = errors.New("cluster: message field too large")
)

type replyTo struct {
	name string
	addr string // host:port
}

type pushMsg struct {
	req      uint64
	from     replyTo
	nodeID   string
	epoch    uint64
	snapshot []byte
}

type pushAck struct {
	req         uint64
	status      uint8
	reason      string
	heldEpoch   uint64
	heldVersion uint64
}

type gatherMsg struct {
	req    uint64
	from   replyTo
	nodeID string
	want   bool // send the snapshot bytes, not only their version
}

type gatherRep struct {
	req         uint64
	highest     uint64
	heldEpoch   uint64
	heldVersion uint64
	has         bool
	snapshot    []byte
}

func bool2byte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func header(t byte, n int) []byte {
	b := make([]byte, 0, 3+n)
	return append(b, protoMagic, protoVersion, t)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (m *pushMsg) encode() []byte {
	b := header(msgPush, 64+len(m.from.name)+len(m.from.addr)+len(m.nodeID)+len(m.snapshot))
	b = binary.AppendUvarint(b, m.req)
	b = appendStr(b, m.from.name)
	b = appendStr(b, m.from.addr)
	b = appendStr(b, m.nodeID)
	b = binary.AppendUvarint(b, m.epoch)
	return appendBytes(b, m.snapshot)
}

func (m *pushAck) encode() []byte {
	b := header(msgPushAck, 32+len(m.reason))
	b = binary.AppendUvarint(b, m.req)
	b = append(b, m.status)
	b = appendStr(b, m.reason)
	b = binary.AppendUvarint(b, m.heldEpoch)
	return binary.AppendUvarint(b, m.heldVersion)
}

func (m *gatherMsg) encode() []byte {
	b := header(msgGather, 32+len(m.from.name)+len(m.from.addr)+len(m.nodeID))
	b = binary.AppendUvarint(b, m.req)
	b = appendStr(b, m.from.name)
	b = appendStr(b, m.from.addr)
	b = appendStr(b, m.nodeID)
	return append(b, bool2byte(m.want))
}

func (m *gatherRep) encode() []byte {
	b := header(msgGatherRep, 32+len(m.snapshot))
	b = binary.AppendUvarint(b, m.req)
	b = binary.AppendUvarint(b, m.highest)
	b = binary.AppendUvarint(b, m.heldEpoch)
	b = binary.AppendUvarint(b, m.heldVersion)
	b = append(b, bool2byte(m.has))
	return appendBytes(b, m.snapshot)
}

// dec reads fields; the first failure sticks in err.
type dec struct {
	b   []byte
	off int
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", errProto, what, d.off)
	}
}

// newDec starts decoding after the header, which must be present.
func newDec(b []byte) *dec {
	d := &dec{b: b, off: 3}
	if _, err := msgType(b); err != nil {
		d.off, d.err = 0, err
	}
	return d
}

func (d *dec) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *dec) byte1() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("short")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *dec) flag() bool {
	switch d.byte1() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad flag")
	return false
}

// bytes returns a sub-slice of at most limit bytes (not copied).
func (d *dec) bytes(limit int) []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) {
		d.err = fmt.Errorf("%w: %d bytes over limit %d", errTooBig, n, limit)
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("short field")
		return nil
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *dec) str(limit int) string { return string(d.bytes(limit)) }

func (d *dec) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("trailing bytes")
	}
	return d.err
}

// maxName bounds names, addresses and reasons inside messages.
const maxName = 256

// msgType checks the header and returns the message type.
func msgType(b []byte) (byte, error) {
	if len(b) < 3 || b[0] != protoMagic || b[1] != protoVersion {
		return 0, fmt.Errorf("%w: bad header", errProto)
	}
	return b[2], nil
}

func decodePush(b []byte, maxSnapshot int) (pushMsg, error) {
	d := newDec(b)
	var m pushMsg
	m.req = d.uint()
	m.from.name = d.str(maxName)
	m.from.addr = d.str(maxName)
	m.nodeID = d.str(maxName)
	m.epoch = d.uint()
	m.snapshot = d.bytes(maxSnapshot)
	return m, d.end()
}

func decodePushAck(b []byte) (pushAck, error) {
	d := newDec(b)
	var m pushAck
	m.req = d.uint()
	m.status = d.byte1()
	m.reason = d.str(maxName)
	m.heldEpoch = d.uint()
	m.heldVersion = d.uint()
	return m, d.end()
}

func decodeGather(b []byte) (gatherMsg, error) {
	d := newDec(b)
	var m gatherMsg
	m.req = d.uint()
	m.from.name = d.str(maxName)
	m.from.addr = d.str(maxName)
	m.nodeID = d.str(maxName)
	m.want = d.flag()
	return m, d.end()
}

func decodeGatherRep(b []byte, maxSnapshot int) (gatherRep, error) {
	d := newDec(b)
	var m gatherRep
	m.req = d.uint()
	m.highest = d.uint()
	m.heldEpoch = d.uint()
	m.heldVersion = d.uint()
	m.has = d.flag()
	m.snapshot = d.bytes(maxSnapshot)
	return m, d.end()
}
