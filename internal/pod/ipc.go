package pod

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/steadfast-pods/steadfast/transport"
)

// A pod started with --aeron-ipc (and --aeron-dir) exchanges its streams
// with the other pods on the same media driver over aeron:ipc: the driver
// does not send them as UDP datagrams to itself, a publisher appends to a
// log buffer its subscriber reads. The pods keep naming each other by
// their data endpoints (host:port, gossiped as before); ipcNet rewrites
// every channel on the way to the driver:
//
//	aeron:udp?endpoint=H:P|k=v...  stream S  →  aeron:ipc?k=v...  stream P<<15 | S
//
// The IPC stream id packs the endpoint's port P (1..65535) and the pod's
// stream S (0..32767; the pods use DataStream and AckStream) into a
// non-negative int32: a different (P, S) gives a different id, and every
// pod computes the same id for the same peer. The host is dropped: on one
// driver every pod is on one host, so it is the port that tells them
// apart, and every pod on the driver must have its own data port (the
// runner hands out each one once). Ports 0 and streams out of range are
// refused, as any channel that is not aeron:udp with one endpoint.
//
// Publications are exclusive: every one has its own log and session, and
// the subscriber sees one image per publisher. Shared publications could
// not interleave fragments of different messages (the appender claims a
// whole message, fragments and all, with one fetch-add on the tail, see
// transport/cnc/appender.go), but a publisher SIGKILLed between that claim
// and its final length store leaves a frame nobody completes, and the
// driver does not pad over such a hole in an IPC log: every message after
// it in that log would wait for ever, those of a replacement publisher
// incarnation (or of another pod) that shared the log too. With exclusive
// publications the hole stalls only the dead process's own image, which
// the driver releases (an unavailable image; the client drops it) once
// that client misses its liveness timeout and the publication's linger
// ends; what it held is replayed by the pods' acks from their outboxes.
// TestIPCTornAppend shows both: the hole stalls a shared log, not another
// publisher's exclusive one.
//
// The pods rely on no image event: a subscription polls every image it
// has (on the pods' timer), and a publication with no subscriber image
// refuses offers as not connected, as a UDP one without a receiver does.

// ipcStreamID is the IPC stream id of stream on the endpoint's port.
func ipcStreamID(port int, stream int32) (int32, error) {
	if port < 1 || port > 65535 {
		return 0, fmt.Errorf("port %d: want 1..65535", port)
	}
	if stream < 0 || stream > 1<<15-1 {
		return 0, fmt.Errorf("stream %d: want 0..32767", stream)
	}
	return int32(port)<<15 | stream, nil
}

// ipcPort checks that endpoint has a port an IPC stream id can be made
// from (not 0: a port picked by the system is not known to the peers
// before they look it up, and on IPC nothing binds it).
func ipcPort(endpoint string) error {
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q: want 1..65535 (IPC stream ids are made from it)", port)
	}
	return nil
}

// ipcChannel maps a pod channel and stream to their IPC channel and
// stream id.
func ipcChannel(channel string, stream int32) (string, int32, error) {
	query, ok := strings.CutPrefix(channel, "aeron:udp?")
	if !ok {
		return "", 0, fmt.Errorf("channel %q: want aeron:udp?endpoint=host:port", channel)
	}
	endpoint := ""
	var keep []string
	for _, kv := range strings.Split(query, "|") {
		if v, ok := strings.CutPrefix(kv, "endpoint="); ok {
			if endpoint != "" {
				return "", 0, fmt.Errorf("channel %q: two endpoints", channel)
			}
			endpoint = v
			continue
		}
		keep = append(keep, kv)
	}
	if err := ipcPort(endpoint); err != nil {
		return "", 0, fmt.Errorf("channel %q: endpoint: %v", channel, err)
	}
	_, port, _ := net.SplitHostPort(endpoint)
	p, _ := strconv.Atoi(port)
	id, err := ipcStreamID(p, stream)
	if err != nil {
		return "", 0, fmt.Errorf("channel %q: %v", channel, err)
	}
	out := "aeron:ipc"
	if len(keep) > 0 {
		out += "?" + strings.Join(keep, "|")
	}
	return out, id, nil
}

// ipcNet is a pod's network on a media driver with --aeron-ipc.
type ipcNet struct{ n *aeronNet }

var _ network = ipcNet{}

func (n ipcNet) AddPublication(channel string, streamID int32) (publication, error) {
	ch, id, err := ipcChannel(channel, streamID)
	if err != nil {
		return nil, err
	}
	return n.n.addPublication(ch, id, true)
}

func (n ipcNet) AddSubscription(channel string, streamID int32) (subscription, error) {
	ch, id, err := ipcChannel(channel, streamID)
	if err != nil {
		return nil, err
	}
	return n.n.AddSubscription(ch, id)
}

func (n ipcNet) Stats() transport.DriverStats { return n.n.Stats() }
func (n ipcNet) Close() error                 { return n.n.Close() }
