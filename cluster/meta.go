package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/steadfast-pods/steadfast/nodeid"
)

// metaVersion is the first byte of node metadata. Append-only.
const metaVersion = 1

// maxMeta is memberlist's metadata limit (memberlist.MetaMaxSize).
const maxMeta = 512

var errMeta = errors.New("cluster: bad node metadata")

// meta is what a node publishes in memberlist's NodeMeta.
//
// Layout:
//
//	+---------+------+--------------+----------+----------------+---------------+
//	| version | role | epoch        | node id  | data endpoint  | metrics addr  |
//	| 1 byte  | 1 B  | uvarint      | str      | str            | str           |
//	+---------+------+--------------+----------+----------------+---------------+
//
// str is a uvarint length followed by that many bytes. Epoch 0 means the
// node has joined but not chosen its epoch yet (see Start).
type meta struct {
	role         Role
	epoch        uint64
	nodeID       string
	dataEndpoint string
	metricsAddr  string
}

func (m meta) encode() []byte {
	b := make([]byte, 0, 16+len(m.nodeID)+len(m.dataEndpoint)+len(m.metricsAddr))
	b = append(b, metaVersion, byte(m.role))
	b = binary.AppendUvarint(b, m.epoch)
	for _, s := range []string{m.nodeID, m.dataEndpoint, m.metricsAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) > maxMeta {
		return m, fmt.Errorf("%w: %d bytes", errMeta, len(b))
	}
	if len(b) < 2 || b[0] != metaVersion {
		return m, fmt.Errorf("%w: bad header", errMeta)
	}
	m.role = Role(b[1]) // opaque to the cluster: the application's
	if m.role == 0 {
		return m, fmt.Errorf("%w: no role", errMeta)
	}
	off := 2
	epoch, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return m, fmt.Errorf("%w: bad epoch", errMeta)
	}
	if err := nodeid.ValidateEpoch(epoch); err != nil {
		return m, fmt.Errorf("%w: %w", errMeta, err)
	}
	m.epoch = epoch
	off += n
	var fields [3]string
	for i, limit := range []int{nodeid.MaxLen, MaxEndpointLen, MaxEndpointLen} {
		l, n := binary.Uvarint(b[off:])
		if n <= 0 || l > uint64(limit) || l > uint64(len(b)-off-n) {
			return m, fmt.Errorf("%w: bad string %d", errMeta, i)
		}
		off += n
		fields[i] = string(b[off : off+int(l)])
		off += int(l)
	}
	if off != len(b) {
		return m, fmt.Errorf("%w: %d trailing bytes", errMeta, len(b)-off)
	}
	m.nodeID, m.dataEndpoint, m.metricsAddr = fields[0], fields[1], fields[2]
	if err := nodeid.Validate(m.nodeID); err != nil {
		return m, fmt.Errorf("%w: %w", errMeta, err)
	}
	return m, nil
}
