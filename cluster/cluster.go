package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// Cluster is one node's membership and snapshot replication. Create it with
// New, call Start once, then use Members/Changes/Events to follow the live
// view and Save to make snapshots durable. Close stops it. All methods are
// safe for concurrent use.
//
// Lock order: mu, then store.mu / EpochTracker.mu / metaMu / reqMu (the
// latter are leaves and never held together).
type Cluster struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	name string // memberlist name, "<node id>#<boot id>"
	// localAddr is the advertised gossip host:port, read once after
	// memberlist.Create (LocalNode's fields are written by UpdateNode
	// without the caller holding a lock).
	localAddr string
	localIP   net.IP
	localPort uint16
	store     *store
	epochs    *EpochTracker

	metaMu sync.Mutex
	meta   []byte // guarded by metaMu; returned by NodeMeta

	mu            sync.Mutex
	started       bool                    // guarded by mu; Start was called
	epoch         uint64                  // guarded by mu; 0 until Start chose it
	nodes         map[string]*node        // guarded by mu; alive memberlist nodes by name
	view          map[string]Member       // guarded by mu; live view by name
	pending       []Event                 // guarded by mu; coalesced, at most one per name
	fencedErr     error                   // guarded by mu; set once when fenced
	restoreSource string                  // guarded by mu
	watchers      map[*viewWatch]struct{} // guarded by mu; woken by recompute (Save)

	wake   chan struct{} // capacity 1: "the view changed"
	fenced chan struct{} // closed when fenced
	inbox  chan []byte   // inbound requests for the worker
	sends  chan struct{} // semaphore for reply senders

	reqMu   sync.Mutex
	nextReq uint64                 // guarded by reqMu; starts random, so a late reply to a previous process on the same address cannot match
	waiting map[uint64]chan []byte // guarded by reqMu; replies by request id

	lifeMu sync.Mutex
	closed bool // guarded by lifeMu
	done   chan struct{}
	wg     sync.WaitGroup

	st  counters
	lim *limiter // rate-limits repeated warnings
}

// node is what the Cluster knows of one memberlist node.
type node struct {
	name           string
	ip             net.IP
	port           uint16
	meta           meta
	valid          bool // meta decoded
	fencedReported bool
}

func (n *node) addr() string { return net.JoinHostPort(n.ip.String(), strconv.Itoa(int(n.port))) }

type counters struct {
	events, eventsDropped, fencedMembers, invalidMeta, joinAttempts atomic.Uint64
	messagesIn, messagesDropped, badMessages                        atomic.Uint64
	saved, sent, acked, received, bytesSent, bytesReceived          atomic.Uint64
	notMember, gatherRefused, restoreRefused                        atomic.Uint64
	inboxBytes                                                      atomic.Int64
	lastSave                                                        atomic.Int64
	lastSaveBytes                                                   atomic.Int64

	rejectMu sync.Mutex
	rejects  map[string]uint64 // guarded by rejectMu
}

func (s *counters) reject(reason string) {
	s.rejectMu.Lock()
	s.rejects[reason]++
	s.rejectMu.Unlock()
}

// New validates cfg, opens the data dir (loading this node's snapshot and
// the replicas it holds; corrupt files are logged and moved aside) and
// creates the memberlist instance, which starts listening. The node is not
// part of any cluster until Start.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lg = lg.With("node_id", cfg.NodeID)
	st, err := openStore(cfg.DataDir, cfg.NodeID, cfg.MaxSnapshotBytes, lg)
	if err != nil {
		return nil, err
	}
	var boot [12]byte // 4 bytes of boot id, 8 of first request id
	if _, err := rand.Read(boot[:]); err != nil {
		return nil, fmt.Errorf("cluster: boot id: %w", err)
	}
	c := &Cluster{
		cfg:      cfg,
		log:      lg,
		name:     cfg.NodeID + "#" + hex.EncodeToString(boot[:4]),
		nextReq:  binary.BigEndian.Uint64(boot[4:]) >> 1,
		store:    st,
		epochs:   NewEpochTracker(),
		nodes:    make(map[string]*node),
		view:     make(map[string]Member),
		watchers: make(map[*viewWatch]struct{}),
		wake:     make(chan struct{}, 1),
		fenced:   make(chan struct{}),
		inbox:    make(chan []byte, inboxDepth),
		sends:    make(chan struct{}, maxReplySenders),
		waiting:  make(map[uint64]chan []byte),
		done:     make(chan struct{}),
		lim:      newLimiter(),
	}
	c.st.rejects = make(map[string]uint64)
	c.setMeta(0)

	base := cfg.Memberlist
	if base == nil {
		base = DefaultConfig().Memberlist
	}
	mlc := *base
	mlc.Name = c.name
	mlc.BindAddr = cfg.BindAddr
	mlc.BindPort = cfg.BindPort
	mlc.AdvertiseAddr = cfg.AdvertiseAddr
	mlc.AdvertisePort = cfg.AdvertisePort
	mlc.Label = cfg.Label
	mlc.SecretKey = cfg.ClusterKey
	mlc.Keyring = nil
	mlc.LogOutput = nil
	mlc.Logger = log.New(slogWriter{log: lg, lim: c.lim}, "", 0)
	d := &delegate{c: c}
	mlc.Delegate = d
	mlc.Events = d
	mlc.Conflict = d
	ml, err := memberlist.Create(&mlc)
	if err != nil {
		return nil, fmt.Errorf("cluster: memberlist: %w", err)
	}
	c.ml = ml
	self := ml.LocalNode()
	c.localIP, c.localPort = append(net.IP(nil), self.Addr...), self.Port
	c.localAddr = net.JoinHostPort(c.localIP.String(), strconv.Itoa(int(c.localPort)))
	c.goTracked(c.worker)
	return c, nil
}

// Name returns this incarnation's memberlist name, "<node id>#<boot id>".
func (c *Cluster) Name() string { return c.name }

// LocalAddr returns the advertised gossip address, host:port (the actual
// port when BindPort was 0). Give it to other nodes as a seed.
func (c *Cluster) LocalAddr() string { return c.localAddr }

// Epoch returns this incarnation's epoch, 0 before Start chose it.
func (c *Cluster) Epoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// Epochs returns the tracker of the highest epoch seen per node id. Pods
// call Epochs().Accept(id, epoch) on each message from a peer and drop the
// message when it returns false.
func (c *Cluster) Epochs() *EpochTracker { return c.epochs }

// HighestEpoch returns the highest epoch seen for nodeID (Epochs().Highest).
func (c *Cluster) HighestEpoch(nodeID string) uint64 { return c.epochs.Highest(nodeID) }

// Members returns the live view, sorted by node id: per node id, the
// incarnation with the highest epoch, not fenced, with its epoch chosen.
// It includes this node (Self) once Start has announced its epoch.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	out := make([]Member, 0, len(c.view))
	for _, m := range c.view {
		out = append(out, m)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		if a.NodeID < b.NodeID {
			return -1
		} else if a.NodeID > b.NodeID {
			return 1
		}
		return 0
	})
	return out
}

// Changes returns a channel that receives a value (capacity 1, never
// closed) after the live view changed. It is a wake-up only: after
// receiving, read Members and/or Events. Several changes may coalesce into
// one wake-up; none is lost, because the state is read afresh.
func (c *Cluster) Changes() <-chan struct{} { return c.wake }

// Events returns and clears the pending events, oldest first. Events are
// coalesced per incarnation: if an incarnation changed several times since
// the last call, only its latest event is kept. The history is bounded
// (1024 incarnations; beyond that the oldest is dropped and counted in
// Stats.EventsDropped), the state never is: Members is always current, so a
// pod may follow Changes and Members only and never call Events.
func (c *Cluster) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.pending
	c.pending = nil
	return ev
}

// Fenced returns a channel closed when this incarnation learns of a higher
// epoch of its own node id. The pod must then stop (Err says why); Save
// fails from then on.
func (c *Cluster) Fenced() <-chan struct{} { return c.fenced }

// Err returns the error that fenced this incarnation (wrapping ErrFenced),
// or nil.
func (c *Cluster) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fencedErr
}

// goTracked runs f in a goroutine that Close waits for. It returns false
// (and does not run f) once Close has begun.
func (c *Cluster) goTracked(f func()) bool {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// Close leaves the cluster gracefully (if started), shuts
// memberlist down and waits for every goroutine the Cluster started.
// memberlist's own goroutines may outlive it briefly; the Cluster ignores
// their callbacks from then on. Close is safe to call twice.
func (c *Cluster) Close() error {
	c.lifeMu.Lock()
	if c.closed {
		c.lifeMu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.lifeMu.Unlock()

	c.mu.Lock()
	leave := c.started // a fenced incarnation leaves too: only its own name goes
	c.mu.Unlock()
	var err error
	if leave && c.cfg.LeaveTimeout > 0 {
		if lerr := c.ml.Leave(c.cfg.LeaveTimeout); lerr != nil {
			c.log.Debug("cluster: leave", "err", lerr)
		}
	}
	if serr := c.ml.Shutdown(); serr != nil {
		err = fmt.Errorf("cluster: shutdown: %w", serr)
	}
	c.wg.Wait()
	return err
}

func (c *Cluster) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Cluster) setMeta(epoch uint64) {
	b := meta{
		role:         c.cfg.Role,
		epoch:        epoch,
		nodeID:       c.cfg.NodeID,
		dataEndpoint: c.cfg.DataEndpoint,
		metricsAddr:  c.cfg.MetricsAddr,
	}.encode()
	c.metaMu.Lock()
	c.meta = b
	c.metaMu.Unlock()
}

// Start joins the cluster, chooses this incarnation's epoch and finds the
// newest snapshot of this node id. The sequence:
//
//  1. Join through the seeds (retrying with backoff until one answers or
//     ctx ends) under the boot-unique name, with epoch 0 in the metadata:
//     peers see the node but keep it out of their live view.
//  2. Gather: ask every other node (except other incarnations of this id),
//     over the reliable path and within GatherTimeout, for the highest
//     epoch it knows for this node id and the version of the snapshot of it
//     that it holds. Start waits for every answer or the timeout: a peer
//     whose host vanished without memberlist noticing yet costs up to
//     GatherTimeout. If nodes were asked and none answered, it asks again
//     (every JoinRetry) until one does, all are declared dead, or ctx ends.
//  3. Epoch = nodeid.Next(local epoch file and local snapshot, highest
//     from peers and from the metadata seen). Persist it.
//  4. Announce: publish the epoch in the metadata (UpdateNode) and push it
//     to every known peer with a push/pull (gossip alone may miss a peer
//     for seconds), waiting up to AnnounceTimeout. Peers now list this
//     node, and fence any lower incarnation of the id at once, without
//     waiting for memberlist to declare it dead.
//  5. Fetch the newest snapshot from the peer that holds it (falling back
//     to the next newest if that fails, each within ReplicaTimeout) if it
//     is newer than the local one (local wins a tie), and keep it locally.
//     Steps 3–5 happen in the order 5, 3, 4.
//
// Start is called once. On error the Cluster should be closed.
func (c *Cluster) Start(ctx context.Context) (*Boot, error) {
	t0 := time.Now()
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return nil, fmt.Errorf("cluster: Start called twice")
	}
	c.started = true
	c.mu.Unlock()

	if err := c.join(ctx); err != nil {
		return nil, err
	}
	localEpoch, err := nodeid.LoadEpoch(c.cfg.DataDir)
	if err != nil {
		c.log.Warn("cluster: ignoring local epoch file", "err", err)
		localEpoch = 0
	}
	own := c.store.ownSnapshot()
	best, source := own.snap, "none"
	if best != nil {
		localEpoch = max(localEpoch, best.Epoch)
		if err := c.validSnapshot(best); err != nil {
			// Kept on disk (a later version may fix the validation), but
			// never restored: a peer's replica or nothing.
			c.st.restoreRefused.Add(1)
			c.log.Warn("cluster: the application refused the local snapshot; trying the peers'",
				"epoch", best.Epoch, "version", best.Version, "err", err)
			best = nil
		} else {
			source = "local"
		}
	}
	// With other nodes around, at least one must answer: restoring nothing
	// while a peer holds a durable snapshot would undo acknowledged work.
	// Nodes that never answer drop out once memberlist declares them dead.
	var answers []gathered
	var asked int
	for {
		answers, asked = c.gather(ctx)
		if err := ctx.Err(); err != nil {
			// Without the peers' answers the epoch could repeat one in use.
			return nil, fmt.Errorf("cluster: start: gathering epochs: %w", err)
		}
		if c.isClosed() {
			return nil, ErrClosed
		}
		if asked == 0 || len(answers) > 0 {
			break
		}
		c.log.Warn("cluster: no peer answered the gather request, retrying", "asked", asked, "in", c.cfg.JoinRetry)
		t := time.NewTimer(c.cfg.JoinRetry)
		select {
		case <-ctx.Done():
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	if len(answers) < asked {
		c.log.Warn("cluster: not every peer answered the gather request", "asked", asked, "answered", len(answers))
	}
	peerEpoch := c.epochs.Highest(c.cfg.NodeID)
	for _, g := range answers {
		peerEpoch = max(peerEpoch, g.highest, g.heldEpoch)
	}
	snap, bestRaw, from := c.fetch(ctx, answers, best)
	if snap != nil {
		best, source = snap, from
		peerEpoch = max(peerEpoch, snap.Epoch)
	}
	epoch, err := nodeid.Next(localEpoch, peerEpoch)
	if err != nil {
		return nil, fmt.Errorf("cluster: start: %w", err)
	}
	if c.cfg.epochOverride != 0 {
		epoch = c.cfg.epochOverride
	}
	if err := nodeid.SaveEpoch(c.cfg.DataDir, epoch); err != nil {
		return nil, fmt.Errorf("cluster: save epoch: %w", err)
	}
	if bestRaw != nil {
		if err := c.store.saveOwn(best, bestRaw); err != nil {
			c.log.Warn("cluster: could not keep the restored snapshot locally", "err", err)
		}
	}

	c.mu.Lock()
	c.epoch = epoch
	c.restoreSource = source
	c.mu.Unlock()
	c.epochs.Observe(c.cfg.NodeID, epoch)
	c.announce(epoch)
	c.mu.Lock()
	c.recompute()
	c.mu.Unlock()

	b := &Boot{Epoch: epoch, Snapshot: best, Source: source, Asked: asked, Peers: len(answers), Took: time.Since(t0)}
	args := []any{"epoch", epoch, "source", source, "asked", asked, "answered", len(answers), "took", b.Took}
	if best != nil {
		args = append(args, "snapshot_epoch", best.Epoch, "snapshot_version", best.Version)
	}
	c.log.Info("cluster: started", args...)
	return b, nil
}

// announce publishes epoch in this node's metadata. memberlist gossips the
// update to only RetransmitMult × log10(N+1) random nodes, so a peer can
// miss it until the next push/pull (seconds); announce therefore also does a
// push/pull with every known peer, waiting up to AnnounceTimeout for those
// of other node ids. Other incarnations of this id are told in the
// background (a killed one may not answer until TCPTimeout); a live one
// learns from it that it is fenced.
func (c *Cluster) announce(epoch uint64) {
	c.setMeta(epoch)
	// UpdateNode applies the new metadata at once and then waits for the
	// broadcast to use up its retransmits; the push/pulls below make that
	// wait unnecessary.
	if err := c.ml.UpdateNode(time.Millisecond); err != nil {
		c.log.Debug("cluster: update broadcast still queued", "err", err)
	}
	c.mu.Lock()
	type target struct {
		addr   string
		sameID bool
	}
	var targets []target
	for _, n := range c.nodes {
		if n.name != c.name {
			targets = append(targets, target{n.addr(), n.valid && n.meta.nodeID == c.cfg.NodeID})
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, tg := range targets {
		if !tg.sameID {
			wg.Add(1)
		}
		ok := c.goTracked(func() {
			if !tg.sameID {
				defer wg.Done()
			}
			if _, err := c.ml.Join([]string{tg.addr}); err != nil {
				c.log.Debug("cluster: announce push/pull", "peer", tg.addr, "err", err)
			}
		})
		if !ok && !tg.sameID {
			wg.Done()
		}
	}
	all := make(chan struct{})
	if !c.goTracked(func() { wg.Wait(); close(all) }) {
		return
	}
	t := time.NewTimer(c.cfg.AnnounceTimeout)
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
		c.log.Warn("cluster: some peers did not confirm the epoch announcement in time", "timeout", c.cfg.AnnounceTimeout)
	case <-c.done:
	}
}

// join retries memberlist's Join through the seeds until one answers.
func (c *Cluster) join(ctx context.Context) error {
	seeds := c.otherSeeds()
	if len(seeds) == 0 {
		c.log.Info("cluster: no other seed, starting a new cluster", "addr", c.LocalAddr())
		return nil
	}
	delay := c.cfg.JoinRetry
	for {
		c.st.joinAttempts.Add(1)
		n, err := c.ml.Join(seeds)
		if n > 0 {
			c.log.Info("cluster: joined", "contacted", n, "seeds", seeds)
			return nil
		}
		c.log.Debug("cluster: join failed, retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: seeds %v: %w (last: %v)", ErrJoin, seeds, ctx.Err(), err)
		case <-c.done:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		delay = min(2*delay, c.cfg.JoinRetryMax)
	}
}

// otherSeeds drops seeds that are this node's own address.
func (c *Cluster) otherSeeds() []string {
	var out []string
	for _, s := range c.cfg.Seeds {
		if s == "" {
			continue
		}
		if a, err := net.ResolveTCPAddr("tcp", s); err == nil && a.Port == int(c.localPort) &&
			(a.IP.Equal(c.localIP) || a.IP.IsLoopback() && c.localIP.IsLoopback()) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// gathered is one peer's answer to the gather request.
type gathered struct {
	peer                   *node
	highest                uint64 // highest epoch it knows for this id
	heldEpoch, heldVersion uint64 // the snapshot of this id it holds
	has                    bool
}

// gather asks every other node (except other incarnations of this id) what
// it knows of this node id: the highest epoch and the version of the
// snapshot it holds, not the bytes. It returns the answers that came back
// within GatherTimeout and how many nodes were asked.
func (c *Cluster) gather(ctx context.Context) ([]gathered, int) {
	c.mu.Lock()
	var targets []*node
	for _, n := range c.nodes {
		// Other incarnations of this id are skipped: their epoch is in the
		// tracker already (from their metadata), their durable snapshots
		// are on replicas, and a killed one would only hold us up until
		// GatherTimeout when its host no longer answers.
		if n.name != c.name && n.valid && n.meta.nodeID != c.cfg.NodeID {
			cp := *n
			targets = append(targets, &cp)
		}
	}
	c.mu.Unlock()
	if len(targets) == 0 {
		return nil, 0
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.GatherTimeout)
	defer cancel()
	results := make(chan *gathered, len(targets))
	for _, n := range targets {
		ok := c.goTracked(func() {
			// A peer serves only members it knows (see rpc.go); a push/pull
			// first makes it know this node now rather than after gossip
			// reached it (up to a few GossipIntervals).
			if _, err := c.ml.Join([]string{n.addr()}); err != nil {
				c.log.Debug("cluster: push/pull before gather", "peer", n.name, "err", err)
			}
			rep, err := c.askSnapshot(ctx, n, false)
			if err != nil {
				c.log.Debug("cluster: gather", "peer", n.name, "err", err)
				results <- nil
				return
			}
			results <- &gathered{peer: n, highest: rep.highest, heldEpoch: rep.heldEpoch, heldVersion: rep.heldVersion, has: rep.has}
		})
		if !ok {
			results <- nil
		}
	}
	var out []gathered
	for range targets {
		if g := <-results; g != nil {
			out = append(out, *g)
		}
	}
	return out, len(targets)
}

// askSnapshot sends a gather request for this node id to n.
func (c *Cluster) askSnapshot(ctx context.Context, n *node, want bool) (gatherRep, error) {
	raw, err := c.request(ctx, n, func(req uint64) []byte {
		return (&gatherMsg{req: req, from: c.replyTo(), nodeID: c.cfg.NodeID, want: want}).encode()
	})
	if err != nil {
		return gatherRep{}, err
	}
	return decodeGatherRep(raw, c.cfg.MaxSnapshotBytes)
}

// fetch downloads the snapshot from the peers that announced one newer
// than local, newest first, each within ReplicaTimeout, and returns the
// first that verifies and is at least as new as announced.
func (c *Cluster) fetch(ctx context.Context, answers []gathered, local *codec.Snapshot) (*codec.Snapshot, []byte, string) {
	var cands []gathered
	for _, g := range answers {
		if g.has && codec.Newer(&codec.Snapshot{Epoch: g.heldEpoch, Version: g.heldVersion}, local) {
			cands = append(cands, g)
		}
	}
	slices.SortFunc(cands, func(a, b gathered) int {
		x := &codec.Snapshot{Epoch: a.heldEpoch, Version: a.heldVersion}
		y := &codec.Snapshot{Epoch: b.heldEpoch, Version: b.heldVersion}
		switch {
		case codec.Newer(x, y):
			return -1
		case codec.Newer(y, x):
			return 1
		}
		return 0
	})
	for _, g := range cands {
		fctx, cancel := context.WithTimeout(ctx, c.cfg.ReplicaTimeout)
		rep, err := c.askSnapshot(fctx, g.peer, true)
		cancel()
		var snap *codec.Snapshot
		if err == nil {
			snap, err = codec.DecodeSnapshot(rep.snapshot, c.cfg.MaxSnapshotBytes)
		}
		if err == nil && snap.NodeID != c.cfg.NodeID {
			err = fmt.Errorf("snapshot of node %q", snap.NodeID)
		}
		if err == nil && codec.Newer(&codec.Snapshot{Epoch: g.heldEpoch, Version: g.heldVersion}, snap) {
			err = fmt.Errorf("got version (%d, %d), announced (%d, %d)", snap.Epoch, snap.Version, g.heldEpoch, g.heldVersion)
		}
		if err == nil && nodeid.ValidateEpoch(snap.Epoch) != nil {
			err = nodeid.ValidateEpoch(snap.Epoch)
		}
		if err == nil {
			if err = c.validSnapshot(snap); err != nil {
				c.st.restoreRefused.Add(1)
			}
		}
		if err != nil {
			c.log.Warn("cluster: fetching snapshot from peer failed, trying the next", "peer", g.peer.name,
				"epoch", g.heldEpoch, "version", g.heldVersion, "err", err)
			continue
		}
		return snap, rep.snapshot, "peer:" + g.peer.meta.nodeID
	}
	if len(cands) > 0 {
		c.log.Error("cluster: no peer delivered its newer snapshot; restoring an older one", "candidates", len(cands))
	}
	return nil, nil, ""
}

// errPeerGone fails a push whose peer left the live view (declared dead,
// left, fenced, or superseded by a higher epoch of its node id) before it
// acknowledged. Save wraps it in its ErrNoReplica error.
var errPeerGone = errors.New("cluster: peer left the live view before acknowledging")

// viewWatch is a wake-up (capacity 1) that recompute sends on after every
// change of the live view; the receiver reads the view afresh.
type viewWatch struct{ ch chan struct{} }

// watchView registers a wake-up for changes of the live view; call the
// returned function to unregister it.
func (c *Cluster) watchView() (<-chan struct{}, func()) {
	w := &viewWatch{ch: make(chan struct{}, 1)}
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	return w.ch, func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}
}

// inView reports whether the incarnation name is in the live view.
func (c *Cluster) inView(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.view[name]
	return ok
}

// Save writes snap to the data dir and pushes it to up to Replicas live
// peers. It returns once the snapshot is written locally and MinAcks peers
// (default 1; fewer if fewer were live) have acknowledged that they
// persisted it, or, when there is no live peer and Config.DurableAlone is
// set, once it is written locally. Pushes to further peers continue in the
// background. Calls should not overlap; if they do, a peer holding a newer
// version of the same epoch counts as an acknowledgement of the older.
//
// A push fails at once when its peer leaves the live view (declared dead,
// left, fenced, or superseded by a higher epoch of its node id), without
// waiting for ReplicaTimeout. While fewer than MinAcks peers have
// acknowledged, every failed push (that one or any other) is replaced by a
// push to the next live peer in rendezvous order that this Save has not
// pushed to yet, keeping up to Replicas pushes in flight. When no push is
// left and no untried live peer remains, Save returns: durable if at least
// one peer acknowledged, ErrNoReplica otherwise. Save also stops as soon as
// this incarnation is fenced.
//
// snap must carry this node's id and the epoch chosen by Start, and must
// not be older than the last saved one. Errors: ErrNotStarted, ErrFenced
// (wrapped), ErrSnapshot, codec.ErrTooLarge, ErrNoReplica (wrapped with
// each peer's failure; the local write happened), ctx.Err(), ErrClosed.
func (c *Cluster) Save(ctx context.Context, snap *codec.Snapshot) (Durable, error) {
	t0 := time.Now()
	c.mu.Lock()
	epoch, fenced := c.epoch, c.fencedErr
	c.mu.Unlock()
	switch {
	case c.isClosed():
		return Durable{}, ErrClosed
	case fenced != nil:
		return Durable{}, fenced
	case epoch == 0:
		return Durable{}, ErrNotStarted
	case snap == nil || snap.NodeID != c.cfg.NodeID || snap.Epoch != epoch:
		return Durable{}, fmt.Errorf("%w: want node id %q epoch %d", ErrSnapshot, c.cfg.NodeID, epoch)
	}
	raw, err := codec.EncodeSnapshot(snap)
	if err != nil {
		return Durable{}, fmt.Errorf("cluster: encode snapshot: %w", err)
	}
	if len(raw) > c.cfg.MaxSnapshotBytes {
		return Durable{}, fmt.Errorf("cluster: %w: snapshot of %d bytes exceeds %d", codec.ErrTooLarge, len(raw), c.cfg.MaxSnapshotBytes)
	}
	if err := c.store.saveOwn(snap, raw); err != nil {
		return Durable{}, err
	}
	c.st.saved.Add(1)
	defer func() {
		c.st.lastSave.Store(int64(time.Since(t0)))
		c.st.lastSaveBytes.Store(int64(len(raw)))
	}()

	d := Durable{Epoch: snap.Epoch, Version: snap.Version}
	// Watch before choosing the peers: a peer that leaves after being
	// chosen always wakes this Save up.
	changes, unwatch := c.watchView()
	defer unwatch()
	peers := c.rankedPeers(nil)
	if len(peers) > c.cfg.Replicas {
		peers = peers[:c.cfg.Replicas]
	}
	if len(peers) == 0 {
		if c.cfg.DurableAlone {
			d.Alone = true
			return d, nil
		}
		return d, fmt.Errorf("%w: no live peer", ErrNoReplica)
	}
	need := min(c.cfg.MinAcks, len(peers))

	type attempt struct {
		peer   *node
		cancel context.CancelCauseFunc
		done   bool
	}
	type result struct {
		i   int // index in attempts
		err error
	}
	var (
		attempts []*attempt
		tried    = make(map[string]bool) // incarnation names pushed to
		pending  int
		errs     []error
		results  = make(chan result)
		saveDone = make(chan struct{})
	)
	defer close(saveDone) // pushes still running report to nobody
	start := func(p *node) {
		i := len(attempts)
		pctx, cancel := context.WithCancelCause(context.Background())
		a := &attempt{peer: p, cancel: cancel}
		attempts = append(attempts, a)
		tried[p.name] = true
		pending++
		ok := c.goTracked(func() {
			tctx, tcancel := context.WithTimeout(pctx, c.cfg.ReplicaTimeout)
			err := c.push(tctx, p, snap, raw)
			tcancel()
			cancel(nil)
			select {
			case results <- result{i, err}:
			case <-saveDone:
			}
		})
		if !ok {
			cancel(nil)
			a.done = true
			pending--
			errs = append(errs, fmt.Errorf("%s: %w", p.meta.nodeID, ErrClosed))
		}
	}
	fail := func(a *attempt, err error) {
		a.done = true
		pending--
		errs = append(errs, fmt.Errorf("%s: %w", a.peer.meta.nodeID, err))
	}
	// refill replaces failed pushes while acknowledgements are missing.
	refill := func() {
		if len(d.Replicas) >= need || pending+len(d.Replicas) >= c.cfg.Replicas {
			return
		}
		for _, p := range c.rankedPeers(tried) {
			if pending+len(d.Replicas) >= c.cfg.Replicas {
				return
			}
			c.log.Info("cluster: pushing the snapshot to another peer", "peer", p.name,
				"version", snap.Version, "acks", len(d.Replicas), "failed", len(errs))
			start(p)
		}
	}
	for _, p := range peers {
		start(p)
	}
	refill() // a push that could not start
	for pending > 0 {
		select {
		case r := <-results:
			a := attempts[r.i]
			if a.done {
				continue // already failed when its peer left the view
			}
			if r.err == nil {
				a.done = true
				pending--
				d.Replicas = append(d.Replicas, a.peer.meta.nodeID)
				if len(d.Replicas) >= need {
					return d, nil
				}
				continue
			}
			fail(a, r.err)
			refill()
		case <-changes:
			if err := c.Err(); err != nil {
				return d, err
			}
			gone := false
			for _, a := range attempts {
				if !a.done && !c.inView(a.peer.name) {
					a.cancel(errPeerGone) // its goroutine stops waiting for the ack
					fail(a, errPeerGone)
					gone = true
					c.log.Info("cluster: replica peer left the live view during a push", "peer", a.peer.name,
						"version", snap.Version, "after", time.Since(t0))
				}
			}
			if gone {
				refill()
			}
		case <-ctx.Done():
			return d, ctx.Err()
		case <-c.done:
			return d, ErrClosed
		}
	}
	if len(d.Replicas) > 0 {
		return d, nil // fewer than MinAcks, but every live candidate answered
	}
	return d, fmt.Errorf("%w: %w", ErrNoReplica, errors.Join(errs...))
}

// push sends one snapshot to one peer and waits for its acknowledgement.
func (c *Cluster) push(ctx context.Context, p *node, snap *codec.Snapshot, raw []byte) error {
	c.st.sent.Add(1)
	rep, err := c.request(ctx, p, func(req uint64) []byte {
		return (&pushMsg{req: req, from: c.replyTo(), nodeID: snap.NodeID, epoch: snap.Epoch, snapshot: raw}).encode()
	})
	if err != nil {
		return err
	}
	ack, err := decodePushAck(rep)
	if err != nil {
		return err
	}
	// A peer that already holds a newer version of the same epoch (a later
	// Save overtook this one) makes this state durable too: snapshots of one
	// incarnation only grow.
	superseded := ack.reason == "stale" && ack.heldEpoch == snap.Epoch && ack.heldVersion >= snap.Version
	if ack.status != ackOK && !superseded {
		return fmt.Errorf("rejected: %s (peer holds %d/%d)", ack.reason, ack.heldEpoch, ack.heldVersion)
	}
	c.st.acked.Add(1)
	return nil
}

// rankedPeers returns the live peers not in skip (incarnation names),
// ordered by rendezvous hashing on (this node id, peer node id): Save
// pushes to the first Replicas of them, so that a node keeps its replicas
// on the same peers while membership is stable, and falls back to the next
// ones.
func (c *Cluster) rankedPeers(skip map[string]bool) []*node {
	c.mu.Lock()
	var peers []*node
	for name, m := range c.view {
		if m.Self || skip[name] {
			continue
		}
		if n := c.nodes[name]; n != nil {
			cp := *n
			peers = append(peers, &cp)
		}
	}
	c.mu.Unlock()
	score := func(n *node) uint64 {
		h := fnv.New64a()
		h.Write([]byte(c.cfg.NodeID))
		h.Write([]byte{0})
		h.Write([]byte(n.meta.nodeID))
		return h.Sum64()
	}
	slices.SortFunc(peers, func(a, b *node) int {
		sa, sb := score(a), score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return peers
}

// Stats returns a snapshot of the counters.
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		NodeID:        c.cfg.NodeID,
		Epoch:         c.epoch,
		Fenced:        c.fencedErr != nil,
		Members:       len(c.view),
		RestoreSource: c.restoreSource,
	}
	c.mu.Unlock()
	s.Events = c.st.events.Load()
	s.EventsDropped = c.st.eventsDropped.Load()
	s.FencedMembers = c.st.fencedMembers.Load()
	s.InvalidMeta = c.st.invalidMeta.Load()
	s.JoinAttempts = c.st.joinAttempts.Load()
	s.MessagesIn = c.st.messagesIn.Load()
	s.MessagesDropped = c.st.messagesDropped.Load()
	s.BadMessages = c.st.badMessages.Load()
	s.SnapshotsSaved = c.st.saved.Load()
	s.SnapshotsSent = c.st.sent.Load()
	s.SnapshotsAcked = c.st.acked.Load()
	s.SnapshotsReceived = c.st.received.Load()
	s.BytesSent = c.st.bytesSent.Load()
	s.BytesReceived = c.st.bytesReceived.Load()
	s.LastSave = time.Duration(c.st.lastSave.Load())
	s.LastSaveBytes = int(c.st.lastSaveBytes.Load())
	s.ReplicasHeld, s.ReplicaBytes = c.store.replicaStats()
	s.EpochRejects = c.epochs.Rejects()
	s.NotMember = c.st.notMember.Load()
	s.GatherRefused = c.st.gatherRefused.Load()
	s.RestoreRefused = c.st.restoreRefused.Load()
	c.st.rejectMu.Lock()
	s.SnapshotRejects = make(map[string]uint64, len(c.st.rejects))
	for k, v := range c.st.rejects {
		s.SnapshotRejects[k] = v
	}
	c.st.rejectMu.Unlock()
	return s
}

// validSnapshot runs Config.ValidateSnapshot, turning a panic in it into an
// error: a snapshot that crashes the validator is a bad snapshot.
func (c *Cluster) validSnapshot(snap *codec.Snapshot) (err error) {
	if c.cfg.ValidateSnapshot == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: validation panicked: %v", ErrSnapshot, r)
		}
	}()
	if err := c.cfg.ValidateSnapshot(snap); err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	return nil
}
