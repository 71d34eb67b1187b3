package pod

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
)

// A pod started with --aeron-dir is a client of a media driver running in
// another process (cmd/mediadriver, or Aeron's own aeronmd): its
// publications and subscriptions live in that driver's log buffers, and the
// driver carries the UDP streams. The pod's channels stay the same
// (aeron:udp?endpoint=...), so a pod on an external driver and a pod with
// an embedded one talk to each other. With --aeron-ipc the pods on one
// driver talk over aeron:ipc through it instead (ipc.go).
//
// Losing the driver is not fatal. The client notices (the driver's
// heartbeat is older than --aeron-driver-timeout, or it announced its
// shutdown); the pod logs "pod: media driver lost", reports it in /status
// (media_driver.attached false, losses) and in its metrics, and keeps
// running: its actors, its state and its cluster membership (gossip does
// not go through the driver) are untouched, only the data plane pauses.
// Offers are refused as not connected and polls find nothing, so the
// publishers' breakers open and their outboxes keep every value not yet
// acknowledged. The pod tries to attach again every aeronRetry; once a
// driver runs in the directory again (the same one restarted, which
// reclaims the dead driver's files), it re-adds every publication and
// subscription it had, logs "pod: media driver back; reattached", and the
// streams resume by the pods' own acks and replay: whatever was in the
// dead driver's log buffers is lost, as datagrams can be, and replayed
// from the outboxes, while the subscribers' watermarks drop what they
// already applied. Exactly once holds without restarting anything.
//
// (The alternative, exiting and having the pod restarted, would throw away
// every pod's in-memory state at once and make them all restore from
// snapshots together, for a fault that never touched their state.)

// aeronDriverTimeout is the default of --aeron-driver-timeout: how long a
// silent driver is tolerated (Aeron's default is 10 s).
const aeronDriverTimeout = 10 * time.Second

// aeronConnectTimeout is how long New waits for a driver that is starting.
const aeronConnectTimeout = 10 * time.Second

// aeronRetry is how often a pod that lost its driver tries to attach again.
const aeronRetry = 200 * time.Millisecond

// aeronWaitLog is how often a pod still without a driver says so.
const aeronWaitLog = 10 * time.Second

// aeronNet adapts an aeronclient.Client to network, and replaces the client
// when the driver is lost and comes back. The publications and
// subscriptions it hands out are its own handles: they stay valid across a
// reattach, refuse offers (not connected) and find nothing to poll while
// the driver is away.
type aeronNet struct {
	cfg aeronclient.Config
	log *slog.Logger

	// mu guards c, pubs and subs; the watcher holds it through a whole
	// reattach, so handles are added and closed either before or after it.
	mu   sync.Mutex
	c    *aeronclient.Client // nil while the driver is lost
	pubs map[*aeronPub]struct{}
	subs map[*aeronSub]struct{}

	attached   atomic.Bool
	losses     atomic.Uint64
	reattaches atomic.Uint64
	lostAt     atomic.Int64 // unix ns of the current loss (0: attached)
	pid        atomic.Int64 // the driver's pid, from its cnc.dat
	lastErr    atomic.Pointer[string]
	// The client given up at the last loss, and its driver's pid (run's
	// goroutine only).
	staleID, stalePid int64

	stop chan struct{} // closed by Close
	done chan struct{} // closed when run returns
}

var _ network = (*aeronNet)(nil)

func newAeronNet(dir, name string, timeout time.Duration, log *slog.Logger) (*aeronNet, error) {
	if timeout <= 0 {
		timeout = aeronDriverTimeout
	}
	cfg := aeronclient.Config{
		Dir:               dir,
		DriverTimeout:     timeout,
		KeepaliveInterval: min(500*time.Millisecond, timeout/4),
		ConnectTimeout:    aeronConnectTimeout,
		Name:              name,
		Logger:            log.With("component", "aeronclient"),
	}
	c, err := aeronclient.Connect(cfg)
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 0 // reattaching: try, and try again later
	n := &aeronNet{cfg: cfg, log: log, c: c, pubs: map[*aeronPub]struct{}{}, subs: map[*aeronSub]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
	n.attached.Store(true)
	n.pid.Store(c.DriverPid())
	go n.run()
	return n, nil
}

// run watches the client and reattaches after a loss, until Close.
func (n *aeronNet) run() {
	defer close(n.done)
	t := time.NewTicker(min(100*time.Millisecond, aeronRetry))
	defer t.Stop()
	var lastTry, lastLog time.Time
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			if n.attached.Load() {
				n.mu.Lock()
				err := n.c.Err()
				n.mu.Unlock()
				if err != nil {
					n.lose(err)
					lastLog = now
				} else if now.Sub(lastTry) >= aeronRetry {
					lastTry = now
					n.attachMissing()
				}
				continue
			}
			if now.Sub(lastTry) < aeronRetry {
				continue
			}
			lastTry = now
			if err := n.reattach(); err != nil {
				e := err.Error()
				n.lastErr.Store(&e)
				if now.Sub(lastLog) >= aeronWaitLog {
					lastLog = now
					n.log.Warn("pod: still waiting for the media driver", "aeron_dir", n.cfg.Dir,
						"lost_for_seconds", time.Since(time.Unix(0, n.lostAt.Load())).Seconds(), "err", err)
				}
			}
		}
	}
}

// lose detaches every handle from the dead client and closes it.
func (n *aeronNet) lose(err error) {
	n.mu.Lock()
	old := n.detachLocked()
	n.staleID, n.stalePid = old.ClientID(), old.DriverPid()
	n.lostAt.Store(time.Now().UnixNano())
	n.attached.Store(false)
	n.losses.Add(1)
	e := err.Error()
	n.lastErr.Store(&e)
	pubs, subs := len(n.pubs), len(n.subs)
	n.mu.Unlock()
	// No handle uses old any more: closing it cannot race with an Offer
	// or a Poll.
	_ = old.Close()
	n.log.Error("pod: media driver lost; the data plane waits for it to come back (state, membership and unacknowledged values are kept)",
		"aeron_dir", n.cfg.Dir, "err", err, "publications", pubs, "subscriptions", subs, "losses", n.losses.Load())
}

// detachLocked takes the client away from every handle (n.mu held) and
// returns it: no Offer or Poll uses it afterwards, so it may be closed.
func (n *aeronNet) detachLocked() *aeronclient.Client {
	c := n.c
	n.c = nil
	for p := range n.pubs {
		p.set(nil)
	}
	for s := range n.subs {
		s.set(nil)
	}
	return c
}

// reattach connects to the driver now running in the directory and adds
// every handle's stream to it; all or nothing.
func (n *aeronNet) reattach() error {
	c, err := aeronclient.Connect(n.cfg)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	type sub struct {
		h *aeronSub
		s *aeronclient.Subscription
	}
	type pub struct {
		h *aeronPub
		p *aeronclient.Publication
	}
	var subs []sub
	var pubs []pub
	for h := range n.subs {
		s, err := c.AddSubscription(h.channel, h.stream)
		if err != nil {
			_ = c.Close()
			return fmt.Errorf("subscription %s stream %d: %w", h.channel, h.stream, err)
		}
		subs = append(subs, sub{h, s})
	}
	for h := range n.pubs {
		p, err := h.add(c)
		if err != nil {
			_ = c.Close()
			return fmt.Errorf("publication %s stream %d: %w", h.channel, h.stream, err)
		}
		pubs = append(pubs, pub{h, p})
	}
	for _, s := range subs {
		s.h.set(s.s)
	}
	for _, p := range pubs {
		p.h.set(p.p)
	}
	n.c = c
	lostFor := time.Since(time.Unix(0, n.lostAt.Load()))
	n.pid.Store(c.DriverPid())
	n.lostAt.Store(0)
	n.reattaches.Add(1)
	n.attached.Store(true)
	n.log.Info("pod: media driver back; reattached", "aeron_dir", n.cfg.Dir, "driver_pid", c.DriverPid(),
		"lost_for_seconds", lostFor.Seconds(), "publications", len(pubs), "subscriptions", len(subs))
	if c.DriverPid() == n.stalePid {
		// The same driver, only stalled past the timeout: it still holds
		// the client given up on, whose subscriptions no longer poll (and
		// would hold back their images once a window ahead of them) until
		// its client liveness timeout.
		if err := c.CloseClient(n.staleID); err != nil {
			n.log.Warn("pod: could not close the earlier client on the media driver", "client_id", n.staleID, "err", err)
		} else {
			n.log.Info("pod: the media driver was only stalled; closed the earlier client", "client_id", n.staleID)
		}
	}
	return nil
}

// attachMissing adds, on the current driver, the streams of handles that
// have none: added while the driver was unresponsive (the command timed
// out before the client noticed anything), they would otherwise wait for
// a loss and a reattach that may never come.
func (n *aeronNet) attachMissing() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for h := range n.subs {
		if h.missing() {
			if s, err := n.c.AddSubscription(h.channel, h.stream); err == nil {
				h.set(s)
			}
		}
	}
	for h := range n.pubs {
		if h.missing() {
			if p, err := h.add(n.c); err == nil {
				h.set(p)
			}
		}
	}
}

// MediaDriverStatus is what /status reports of the driver a pod attached
// with --aeron-dir uses.
type MediaDriverStatus struct {
	Dir      string `json:"dir"`
	Attached bool   `json:"attached"`
	Pid      int64  `json:"pid,omitempty"` // the driver last attached to
	// Losses: times the driver was lost; Reattaches: times the pod
	// attached again. Attached and Losses == Reattaches: every loss is
	// over.
	Losses     uint64 `json:"losses"`
	Reattaches uint64 `json:"reattaches"`
	// LostSeconds: how long the current loss has lasted (0 when attached).
	LostSeconds float64 `json:"lost_seconds,omitempty"`
	// LastError: why the driver was last lost, or why the last attempt to
	// attach again failed.
	LastError string `json:"last_error,omitempty"`
}

func (n *aeronNet) status() *MediaDriverStatus {
	s := &MediaDriverStatus{Dir: n.cfg.Dir, Attached: n.attached.Load(), Pid: n.pid.Load(),
		Losses: n.losses.Load(), Reattaches: n.reattaches.Load()}
	if at := n.lostAt.Load(); at != 0 && !s.Attached {
		s.LostSeconds = time.Since(time.Unix(0, at)).Seconds()
	}
	if e := n.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// AddPublication adds a publication on the current driver; while the
// driver is lost it returns a handle that attaches when it is back.
func (n *aeronNet) AddPublication(channel string, streamID int32) (publication, error) {
	return n.addPublication(channel, streamID, false)
}

// addPublication adds a shared publication, or an exclusive one (its own
// log, which no other publication appends to: ipcNet's).
func (n *aeronNet) addPublication(channel string, streamID int32, exclusive bool) (publication, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := &aeronPub{n: n, channel: channel, stream: streamID, exclusive: exclusive}
	if n.c != nil {
		p, err := h.add(n.c)
		if err != nil && refused(err) {
			return nil, err
		}
		h.p = p // nil if the driver did not answer: attached later
	}
	n.pubs[h] = struct{}{}
	return h, nil
}

// AddSubscription: as AddPublication.
func (n *aeronNet) AddSubscription(channel string, streamID int32) (subscription, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := &aeronSub{n: n, channel: channel, stream: streamID}
	if n.c != nil {
		s, err := n.c.AddSubscription(channel, streamID)
		if err != nil && refused(err) {
			return nil, err
		}
		h.s = s
	}
	n.subs[h] = struct{}{}
	return h, nil
}

// Stats is zero: the external driver's counters are in its cnc.dat (read
// them with AeronStat), not in this process.
func (n *aeronNet) Stats() transport.DriverStats { return transport.DriverStats{} }

// Close stops the watcher and closes the client (and with it every
// publication and subscription still open). Safe to call twice.
func (n *aeronNet) Close() error {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	<-n.done
	n.mu.Lock()
	c := n.detachLocked()
	n.mu.Unlock()
	if c == nil {
		return nil
	}
	return ignoreLost(c.Close())
}

// refused reports whether the driver answered a command with an error (a
// bad channel, say): trying again would not help. Anything else (no
// answer in time, a client that failed) is the driver's trouble, and the
// handle is attached later.
func refused(err error) bool { return errors.Is(err, aeronclient.ErrDriver) }

// ignoreLost drops the errors of a client whose driver is gone (already
// logged when it was lost).
func ignoreLost(err error) error {
	if errors.Is(err, aeronclient.ErrDriverTimeout) || errors.Is(err, aeronclient.ErrClientTimeout) {
		return nil
	}
	return err
}

// aeronPub is a publication that survives a reattach. Its lock keeps the
// client's publication mapped while an Offer uses it.
type aeronPub struct {
	n         *aeronNet
	channel   string
	stream    int32
	exclusive bool // on every driver it is added to
	mu        sync.RWMutex
	p         *aeronclient.Publication // nil: driver lost, or closed
	closed    bool
}

// add adds h's publication on client c.
func (h *aeronPub) add(c *aeronclient.Client) (*aeronclient.Publication, error) {
	if h.exclusive {
		return c.AddExclusivePublication(h.channel, h.stream)
	}
	return c.AddPublication(h.channel, h.stream)
}

func (h *aeronPub) missing() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.p == nil && !h.closed
}

func (h *aeronPub) set(p *aeronclient.Publication) {
	h.mu.Lock()
	h.p = p
	h.mu.Unlock()
}

func (h *aeronPub) Offer(msg []byte) (int64, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	switch {
	case h.closed:
		return transport.PublicationClosed, transport.ErrClosed
	case h.p == nil:
		return transport.NotConnected, transport.ErrNotConnected
	}
	return h.p.Offer(msg)
}

func (h *aeronPub) Close() error {
	h.n.mu.Lock()
	delete(h.n.pubs, h)
	h.n.mu.Unlock()
	h.mu.Lock()
	p := h.p
	h.p, h.closed = nil, true
	h.mu.Unlock()
	if p == nil {
		return nil
	}
	return ignoreLost(p.Close())
}

// aeronSub is a subscription that survives a reattach. It is polled on the
// pods' timer: the client has no wake-up channel.
type aeronSub struct {
	n       *aeronNet
	channel string
	stream  int32
	mu      sync.RWMutex
	s       *aeronclient.Subscription // nil: driver lost, or closed
}

func (h *aeronSub) missing() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.s == nil
}

func (h *aeronSub) set(s *aeronclient.Subscription) {
	h.mu.Lock()
	h.s = s
	h.mu.Unlock()
}

func (h *aeronSub) Poll(handler func(msg []byte, hd transport.Header), limit int) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.s == nil {
		return 0
	}
	return h.s.Poll(handler, limit)
}

func (*aeronSub) Notify() <-chan struct{} { return nil }

// mediaDriverStatus returns the driver status of a pod on a media driver
// (nil for an embedded driver).
func mediaDriverStatus(n network) *MediaDriverStatus {
	for {
		switch v := n.(type) {
		case *aeronNet:
			return v.status()
		case paramNet:
			n = v.network
		case ipcNet:
			n = v.n
		default:
			return nil
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
