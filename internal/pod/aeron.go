package pod

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
)

// A pod started with --aeron-dir is a client of a media driver running in
// another process (cmd/mediadriver, or Aeron's own aeronmd): its
// publications and subscriptions live in that driver's log buffers, and the
// driver carries the UDP streams. The pod's channels stay the same
// (aeron:udp?endpoint=...), so a pod on an external driver and a pod with
// an embedded one talk to each other.
//
// Losing the driver is fatal to the pod: the client reports it (the
// driver's heartbeat stops for aeronDriverTimeout, or it announced its
// shutdown), Run returns an error wrapping ErrDriverLost and the binary
// exits ExitFailure. Whoever runs the pod restarts it once the driver is
// back (cmd/runner does); the restarted pod restores its state from its
// peers like any replaced pod. Nothing is lost: what was offered into the
// dead driver's logs but not acknowledged is still in the publishers'
// outboxes.

// ErrDriverLost: the external media driver died, hung or shut down.
var ErrDriverLost = errors.New("pod: media driver lost")

// aeronDriverTimeout is how long a silent driver is tolerated (Aeron's
// default is 10 s).
const aeronDriverTimeout = 10 * time.Second

// aeronConnectTimeout is how long New waits for a driver that is starting.
const aeronConnectTimeout = 10 * time.Second

// aeronNet adapts an aeronclient.Client to network.
type aeronNet struct {
	c    *aeronclient.Client
	lost chan struct{} // closed when the client fails
	stop chan struct{} // closed by Close
	done chan struct{} // closed when watch returns
}

var _ network = (*aeronNet)(nil)

func newAeronNet(dir, name string, log *slog.Logger) (*aeronNet, error) {
	c, err := aeronclient.Connect(aeronclient.Config{
		Dir:            dir,
		DriverTimeout:  aeronDriverTimeout,
		ConnectTimeout: aeronConnectTimeout,
		Name:           name,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	n := &aeronNet{c: c, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go n.watch()
	return n, nil
}

// watch closes lost when the client reports a terminal error.
func (n *aeronNet) watch() {
	defer close(n.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			if n.c.Err() != nil {
				close(n.lost)
				return
			}
		}
	}
}

// Lost is closed when the driver is gone; Err then says why.
func (n *aeronNet) Lost() <-chan struct{} { return n.lost }

// Err is the client's terminal error wrapped in ErrDriverLost (nil while
// it is usable).
func (n *aeronNet) Err() error {
	if err := n.c.Err(); err != nil {
		return fmt.Errorf("%w (%s): %w", ErrDriverLost, n.c.Dir(), err)
	}
	return nil
}

func (n *aeronNet) AddPublication(channel string, streamID int32) (publication, error) {
	p, err := n.c.AddPublication(channel, streamID)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (n *aeronNet) AddSubscription(channel string, streamID int32) (subscription, error) {
	s, err := n.c.AddSubscription(channel, streamID)
	if err != nil {
		return nil, err
	}
	return aeronSub{s}, nil
}

// Stats is zero: the external driver's counters are in its cnc.dat (read
// them with AeronStat), not in this process.
func (n *aeronNet) Stats() transport.DriverStats { return transport.DriverStats{} }

func (n *aeronNet) Close() error {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	<-n.done
	err := n.c.Close()
	if errors.Is(err, aeronclient.ErrDriverTimeout) || errors.Is(err, aeronclient.ErrClientTimeout) {
		return nil // already reported by Run
	}
	return err
}

// aeronSub is polled on the pods' timer: the client has no wake-up channel.
type aeronSub struct{ *aeronclient.Subscription }

func (aeronSub) Notify() <-chan struct{} { return nil }

// driverLost returns the network's Lost channel (nil, never ready, for
// networks that cannot lose their driver) and its error.
func driverLost(n network) (<-chan struct{}, func() error) {
	for {
		switch v := n.(type) {
		case *aeronNet:
			return v.Lost(), v.Err
		case paramNet:
			n = v.network
		default:
			return nil, func() error { return nil }
		}
	}
}

// paramNet appends the pod's --channel-params to every channel, except
// keys the channel already sets (the pod's own per-stream choices, such as
// the ack stream's small terms, win).
type paramNet struct {
	network
	params string
}

func (n paramNet) AddPublication(channel string, streamID int32) (publication, error) {
	return n.network.AddPublication(withParams(channel, n.params), streamID)
}

func (n paramNet) AddSubscription(channel string, streamID int32) (subscription, error) {
	return n.network.AddSubscription(withParams(channel, n.params), streamID)
}

// withParams appends the key=value pairs of params that channel lacks.
func withParams(channel, params string) string {
	_, query, _ := strings.Cut(channel, "?")
	has := map[string]bool{}
	for _, kv := range strings.Split(query, "|") {
		k, _, _ := strings.Cut(kv, "=")
		has[k] = true
	}
	sep := "|"
	if query == "" {
		sep = "?"
	}
	for _, kv := range strings.Split(params, "|") {
		if k, _, _ := strings.Cut(kv, "="); !has[k] {
			channel += sep + kv
			sep = "|"
		}
	}
	return channel
}

// channelParamKeys are the channel parameters --channel-params accepts.
var channelParamKeys = map[string]func(int) bool{
	"mtu":         func(n int) bool { return n >= 64 && n <= 65504 && n%32 == 0 },
	"term-length": func(n int) bool { return n >= 64<<10 && n <= 1<<30 && n&(n-1) == 0 },
}

// parseChannelParams validates --channel-params: key=value pairs separated
// by '|', each key once, of mtu (a multiple of 32 in 64..65504) and
// term-length (a power of two in 64k..1g); sizes take k, m or g.
func parseChannelParams(s string) error {
	if s == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, "|") {
		k, v, ok := strings.Cut(kv, "=")
		valid := channelParamKeys[k]
		switch {
		case !ok || k == "" || v == "":
			return fmt.Errorf("%q: want key=value pairs separated by |", kv)
		case valid == nil:
			return fmt.Errorf("%q: unknown key (want mtu or term-length)", k)
		case seen[k]:
			return fmt.Errorf("%q given twice", k)
		}
		seen[k] = true
		n, err := parseSize(v)
		if err != nil || !valid(n) {
			if k == "mtu" {
				return fmt.Errorf("mtu %q: want a multiple of 32 in 64..65504", v)
			}
			return fmt.Errorf("term-length %q: want a power of two in 64k..1g", v)
		}
	}
	return nil
}

// parseSize reads a byte count with an optional k, m or g suffix.
func parseSize(v string) (int, error) {
	mul := 1
	switch strings.ToLower(v[len(v)-1:]) {
	case "k":
		mul, v = 1<<10, v[:len(v)-1]
	case "m":
		mul, v = 1<<20, v[:len(v)-1]
	case "g":
		mul, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > (1<<31-1)/mul {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * mul, nil
}
