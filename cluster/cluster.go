package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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
	started       bool              // guarded by mu; Start was called
	epoch         uint64            // guarded by mu; 0 until Start chose it
	nodes         map[string]*node  // guarded by mu; alive memberlist nodes by name
	view          map[string]Member // guarded by mu; live view by name
	pending       []Event           // guarded by mu; coalesced, at most one per name
	fencedErr     error             // guarded by mu; set once when fenced
	restoreSource string            // guarded by mu
	viewVer       uint64            // guarded by mu; counts changes of the live view
	viewCh        chan struct{}     // guarded by mu; closed and replaced when the view changes

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

	holdMu  sync.Mutex
	holders holders              // guarded by holdMu; who holds this node's newest snapshot
	relayed map[string]bool      // guarded by holdMu; relay pushes done (see relay)
	absent  map[string]time.Time // guarded by holdMu; node ids of replicas held, absent from the view since

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
	rereplicated, collected, relayed                                atomic.Uint64
	inboxBytes                                                      atomic.Int64
	lastSave                                                        atomic.Int64
	lastSaveBytes                                                   atomic.Int64
	rtt                                                             durHist // replication round trips (status.go)

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
	// No node_id here: the caller's logger names the node (a second
	// node_id key made JSON lines with the key twice).
	st, err := openStore(cfg.DataDir, cfg.NodeID, cfg.MaxSnapshotBytes, lg)
	if err != nil {
		return nil, err
	}
	var boot [12]byte // 4 bytes of boot id, 8 of first request id
	if _, err := rand.Read(boot[:]); err != nil {
		return nil, fmt.Errorf("cluster: boot id: %w", err)
	}
	c := &Cluster{
		cfg:     cfg,
		log:     lg,
		name:    cfg.NodeID + "#" + hex.EncodeToString(boot[:4]),
		nextReq: binary.BigEndian.Uint64(boot[4:]) >> 1,
		store:   st,
		epochs:  NewEpochTracker(),
		nodes:   make(map[string]*node),
		view:    make(map[string]Member),
		viewCh:  make(chan struct{}),
		wake:    make(chan struct{}, 1),
		fenced:  make(chan struct{}),
		inbox:   make(chan []byte, inboxDepth),
		sends:   make(chan struct{}, maxReplySenders),
		waiting: make(map[uint64]chan []byte),
		done:    make(chan struct{}),
		lim:     newLimiter(),
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
	if len(cfg.ExtraKeys) > 0 { // a key rotation: ClusterKey encrypts, every key decrypts
		kr, err := memberlist.NewKeyring(cfg.ExtraKeys, cfg.ClusterKey)
		if err != nil {
			return nil, fmt.Errorf("cluster: keyring: %w", err)
		}
		mlc.Keyring = kr
	}
	mlc.LogOutput = nil
	mlc.Logger = log.New(slogWriter{log: lg, lim: c.lim, done: c.done}, "", 0)
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

// View returns the live view (as Members), its version, and a channel
// that is closed when the view changes after that version. This is the
// one change notification: the version grows by one per change, and any
// number of waiters can select on the channel, then call View again.
func (c *Cluster) View() (members []Member, version uint64, changed <-chan struct{}) {
	members = c.Members()
	version, changed = c.viewChanged()
	return members, version, changed
}

// viewChanged returns the view's version and the channel closed when it
// changes next.
func (c *Cluster) viewChanged() (uint64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.viewVer, c.viewCh
}

// Changes returns a channel that receives a value (capacity 1, never
// closed) after the live view changed: View's notification as one stable
// channel, for a single consumer. It is a wake-up only: after receiving,
// read Members (or View). Several changes may coalesce into one wake-up;
// none is lost, because the state is read afresh.
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
			c.log.Debug("cluster: leave", "err", oneLine(lerr))
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
	s.Rereplicated = c.st.rereplicated.Load()
	s.Relayed = c.st.relayed.Load()
	s.ReplicasCollected = c.st.collected.Load()
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
