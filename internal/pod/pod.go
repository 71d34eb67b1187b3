package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/steadfast-pods/steadfast/actors"
	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/nodeid"
	"github.com/steadfast-pods/steadfast/transport"
)

// Transport stream ids: batches and end-of-stream controls flow from
// publishers to a subscriber's data endpoint on DataStream; acks and hellos
// flow back to a publisher's data endpoint on AckStream.
const (
	DataStream int32 = 1001
	AckStream  int32 = 1002
)

// FinalStateFile is written into a subscriber's data dir when it stops
// gracefully (finished or signalled): the JSON of FinalState. The runner
// reads it to check the invariant.
const FinalStateFile = "final-state.json"

// FinalState is what a finished subscriber leaves behind.
type FinalState struct {
	NodeID        string               `json:"node_id"`
	Epoch         uint64               `json:"epoch"`
	RestoreSource string               `json:"restore_source"`
	Tally         map[string]*PubTally `json:"tally"`
	DeadLetters   uint64               `json:"dead_letters"`
	Restarts      int                  `json:"restarts"`
	// Complete: every publisher's stream was delivered (the pod finished
	// by itself); false after a signal.
	Complete bool `json:"complete"`
	// Durable: the final snapshot reached a replica.
	Durable bool `json:"durable"`
	// FirstApplied and LastApplied bound when this incarnation's logger
	// applied values (unix ns, 0 if it applied none).
	FirstApplied int64 `json:"first_applied_unix_nano"`
	LastApplied  int64 `json:"last_applied_unix_nano"`
}

// fastSnapshot is the shortest interval between a subscriber's snapshots
// while values arrive (and how often its logger checkpoints the watermarks
// a snapshot will hold): once fastSnapshotValues values arrived since the
// last one, and otherwise every slowSnapshot while any arrive. A save
// (local write, replica push, the replica's ack) takes longer than
// fastSnapshot, so under load the saves run back to back: a publisher's
// outbox is released once per save, and throughput is about --outbox
// values per save. At 25 ms the outbox was full most of the time at batch
// 1024 (--outbox 262144: ~5 M values/s, one release per 25 ms); at a low
// rate the subscriber still saves at most every slowSnapshot.
const (
	fastSnapshot       = 5 * time.Millisecond
	fastSnapshotValues = 8192
	slowSnapshot       = 25 * time.Millisecond
)

// ErrFinishTimeout: the subscriber finished but its final snapshot did not
// become durable in time.
var ErrFinishTimeout = errors.New("pod: final snapshot not durable in time")

// Pod is one running publisher or subscriber. New prepares it (flags are
// already parsed into Config), Run runs it until ctx ends or, for a
// subscriber, until every publisher's stream has been delivered; Close
// releases what New and Run acquired.
type Pod struct {
	cfg     Config
	log     *slog.Logger
	id      string
	reg     *prometheus.Registry
	driver  network
	clus    *cluster.Cluster
	sub     subscription // this pod's inbound stream
	http    *http.Server
	lis     net.Listener
	prof    pprofServer
	dataAdv string // advertised data endpoint
	gossip  string // advertised gossip address, read once after cluster.New

	graph *actors.Graph
	view  *view
	auth  *dataAuth // seals and admits data-plane messages
	// running publishes graph and boot to the metrics collector (an HTTP
	// goroutine) once Run has built them.
	running atomic.Pointer[runningPod]

	ready      atomic.Bool
	epoch      atomic.Uint64
	boot       *cluster.Boot
	snapVer    uint64
	snapMu     sync.Mutex // serialises Save calls; guards snapVer and snapWarned
	snapWarned time.Time
	snapStat   snapStats
	hist       podHistograms // metrics.go
	wg         sync.WaitGroup

	pubSide *publisher  // publisher pods
	subSide *subscriber // subscriber pods

	// delivering is set by the first value through a subscriber's worker
	// or the first ack a publisher takes in (markDelivering).
	delivering atomic.Bool
	runningAt  time.Time // when the graph started (set before it runs)

	closeOnce sync.Once
}

type runningPod struct {
	graph *actors.Graph
	boot  *cluster.Boot
}

type snapStats struct {
	version  atomic.Uint64
	bytes    atomic.Int64
	took     atomic.Int64 // ns of the last Save
	saved    atomic.Uint64
	durable  atomic.Uint64
	failures atomic.Uint64
	// lastDurable: the last durable Save's result (/status holders).
	lastDurable atomic.Pointer[cluster.Durable]
}

// New builds a pod: node id, transport driver and inbound subscription,
// cluster membership (not yet joined), metrics registry and HTTP server.
func New(cfg Config, log *slog.Logger) (*Pod, error) {
	return newPod(cfg, log, nil)
}

// newPod is New with an optional network (nil: the real transport driver).
func newPod(cfg Config, log *slog.Logger, nw network) (*Pod, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("pod: data dir: %w", err)
	}
	id, src, err := nodeid.Resolve(cfg.NodeID, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	p := &Pod{cfg: cfg, id: id, reg: prometheus.NewRegistry()}
	p.log = log.With("node_id", id, "role", cfg.Role.String())
	p.log.Info("pod: starting", "node_id_source", src, "data_dir", cfg.DataDir)
	if len(cfg.ClusterKey) == 0 {
		p.log.Warn("pod: running --insecure, without a cluster key: gossip is not encrypted and data-plane messages are not authenticated; anyone who can reach this pod's ports can join the cluster and forge its messages",
			"bind", cfg.Bind, "data_endpoint", cfg.DataEndpoint)
	} else if cfg.ClusterKeyFile != "" {
		// Where the key came from and how many; never the key.
		p.log.Info("pod: cluster key read from file", "file", cfg.ClusterKeyFile, "keys", 1+len(cfg.ExtraKeys))
	}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()

	if nw == nil && cfg.AeronDir != "" {
		if nw, err = newAeronNet(cfg.AeronDir, "steadfast "+id, cfg.AeronDriverTimeout, p.log); err != nil {
			return nil, fmt.Errorf("pod: media driver: %w", err)
		}
		an := nw.(*aeronNet)
		p.log.Info("pod: attached to media driver", "aeron_dir", cfg.AeronDir, "driver_pid", an.pid.Load(), "ipc", cfg.AeronIPC)
		if cfg.AeronIPC {
			nw = ipcNet{an}
		}
	}
	if nw == nil {
		tcfg := transport.DefaultConfig()
		tcfg.Logger = p.log.With("component", "transport")
		if cfg.MTU != 0 {
			tcfg.MTU = cfg.MTU
		}
		d, err := transport.NewDriver(tcfg)
		if err != nil {
			return nil, fmt.Errorf("pod: transport: %w", err)
		}
		nw = driverNet{d}
	}
	if cfg.ChannelParams != "" {
		nw = paramNet{nw, cfg.ChannelParams}
	}
	p.driver = nw
	stream := DataStream
	if cfg.Role == Publisher {
		stream = AckStream
	}
	if p.sub, err = p.driver.AddSubscription(channelURI(cfg.DataEndpoint), stream); err != nil {
		return nil, fmt.Errorf("pod: data endpoint %s: %w", cfg.DataEndpoint, err)
	}

	advHost, err := advertiseHost(cfg)
	if err != nil {
		return nil, err
	}
	p.dataAdv = advertised(cfg.DataEndpoint, advHost)
	metricsAdv := ""
	if cfg.MetricsAddr != "" {
		if p.lis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("pod: metrics address: %w", err)
		}
		metricsAdv = advertised(p.lis.Addr().String(), advHost)
	}
	if cfg.Pprof != "" {
		if p.prof.lis, err = net.Listen("tcp", cfg.Pprof); err != nil {
			return nil, fmt.Errorf("pod: pprof address: %w", err)
		}
	}

	ccfg := cluster.DefaultConfig()
	if cfg.Membership == "local" {
		ccfg = cluster.DefaultLocalConfig()
	}
	ccfg.NodeID = id
	ccfg.Role = cfg.Role
	ccfg.DataDir = cfg.DataDir
	ccfg.DataEndpoint = p.dataAdv
	ccfg.MetricsAddr = metricsAdv
	host, port, _ := net.SplitHostPort(cfg.Bind) // validated
	ccfg.BindAddr = host
	if ccfg.BindPort, err = strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("%w: bind port %q: %v", ErrConfig, port, err)
	}
	if cfg.Advertise != "" {
		if h, pt, err := net.SplitHostPort(cfg.Advertise); err == nil {
			ccfg.AdvertiseAddr = h
			if ccfg.AdvertisePort, err = strconv.Atoi(pt); err != nil {
				return nil, fmt.Errorf("%w: advertise port %q: %v", ErrConfig, pt, err)
			}
		} else {
			ccfg.AdvertiseAddr = cfg.Advertise
			ccfg.AdvertisePort = ccfg.BindPort
		}
	} else if unspecified(host) && ccfg.BindPort != 0 {
		// Gossip is advertised on the same address as the data endpoint.
		// Left to itself memberlist picks the interface of the default
		// route, which on a container with several networks (a swarm
		// task: overlay + docker_gwbridge) is not the one peers share.
		ccfg.AdvertiseAddr = advHost
		ccfg.AdvertisePort = ccfg.BindPort
	}
	ccfg.Seeds = cfg.Join
	ccfg.StartAloneAfter = cfg.StartAloneAfter
	if cfg.ReplicaAcks > 0 { // a Config built by hand may leave it 0
		ccfg.MinAcks = cfg.ReplicaAcks
	}
	ccfg.ClusterKey = cfg.ClusterKey
	ccfg.ValidateSnapshot = validateSnapshot(cfg.OutboxCapacity)
	ccfg.ExtraKeys = cfg.ExtraKeys
	ccfg.Logger = p.log.With("component", "cluster")
	// A subscriber acknowledges only replicated snapshots: with no live
	// peer at all nothing is durable, and its publishers keep their
	// outboxes (the runner and compose always run >= 2 members).
	ccfg.DurableAlone = cfg.Role == Publisher
	if p.clus, err = cluster.New(ccfg); err != nil {
		return nil, err
	}
	// Read once, before Start: cluster.LocalAddr reads memberlist's local
	// node without a lock, racing with the UpdateNode in Start.
	p.gossip = p.clus.LocalAddr()
	p.view = newView(p.clus)
	if p.auth, err = newDataAuth(p.log.With("component", "data-auth"), p.view, append([][]byte{cfg.ClusterKey}, cfg.ExtraKeys...)...); err != nil {
		return nil, err
	}

	switch cfg.Role {
	case Publisher:
		p.pubSide, err = newPublisher(p)
	default:
		p.subSide, err = newSubscriber(p)
	}
	if err != nil {
		return nil, err
	}
	p.registerMetrics()
	ok = true
	return p, nil
}

// ID returns the pod's node id.
func (p *Pod) ID() string { return p.id }

// Registry returns the pod's Prometheus registry.
func (p *Pod) Registry() *prometheus.Registry { return p.reg }

// GossipAddr returns the advertised memberlist address (host:port).
func (p *Pod) GossipAddr() string { return p.gossip }

// MetricsAddr returns the address the metrics server listens on ("" if off).
func (p *Pod) MetricsAddr() string {
	if p.lis == nil {
		return ""
	}
	return p.lis.Addr().String()
}

func channelURI(endpoint string) string { return "aeron:udp?endpoint=" + endpoint }

// advertiseHost picks the host peers use to reach this pod: --advertise,
// else the bind host, else the data endpoint host, else a private IPv4 of
// this machine (as memberlist does when binding 0.0.0.0).
func advertiseHost(cfg Config) (string, error) {
	if cfg.Advertise != "" {
		if h, _, err := net.SplitHostPort(cfg.Advertise); err == nil {
			return h, nil
		}
		return cfg.Advertise, nil
	}
	for _, a := range []string{cfg.Bind, cfg.DataEndpoint} {
		if h, _, err := net.SplitHostPort(a); err == nil && !unspecified(h) {
			return h, nil
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("pod: no address to advertise (set --advertise): %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && n.IP.IsPrivate() {
			return n.IP.String(), nil
		}
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String(), nil
		}
	}
	return "127.0.0.1", nil
}

func unspecified(h string) bool {
	if h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

// advertised replaces an unspecified host in addr with host.
func advertised(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || !unspecified(h) {
		return addr
	}
	return net.JoinHostPort(host, port)
}

// Run joins the cluster, restores the newest snapshot, runs the actor graph
// and the snapshot loop, and stops gracefully when ctx ends (final snapshot,
// publications closed with end of stream). A subscriber with ExitWhenDone
// also returns nil once every publisher's stream is complete and its final
// snapshot is durable. It returns an error when an actor escalated, the node
// was fenced, or startup failed.
func (p *Pod) Run(ctx context.Context) error {
	p.serveHTTP()  // http.go
	p.servePprof() // pprof.go
	boot, err := p.clus.Start(ctx)
	if err != nil {
		return fmt.Errorf("pod: cluster start: %w", err)
	}
	p.boot = boot
	p.epoch.Store(boot.Epoch)
	p.hist.restore.Observe(boot.Took.Seconds())
	if err := p.auth.start(p.id, boot.Epoch); err != nil {
		return err
	}
	var states map[string][]byte
	if boot.Snapshot != nil {
		states = boot.Snapshot.States
	}
	p.log.Info("pod: restore", "source", boot.Source, "epoch", boot.Epoch, "took_seconds", boot.Took.Seconds(), "peers", boot.Peers)

	gcfg := actors.DefaultConfig()
	gcfg.Logger = p.log.With("component", "actors")
	gcfg.Codec = codec.StateCodec{}
	// Injected worker panics come every few hundred values: keep the
	// restart backoff short (the restart budget still bounds storms).
	gcfg.BackoffMax = 100 * time.Millisecond
	if p.graph, err = actors.NewGraph(gcfg); err != nil {
		return err
	}
	switch {
	case p.pubSide != nil:
		err = p.pubSide.build(p.graph, states)
	default:
		err = p.subSide.build(p.graph, states)
	}
	if err != nil {
		return fmt.Errorf("pod: restore: %w", err)
	}
	p.view.refresh() // the receive loops admit only live members: load the view before they start
	p.goTracked(p.view.run)

	gctx, stopGraph := context.WithCancel(context.Background())
	defer stopGraph()
	p.running.Store(&runningPod{graph: p.graph, boot: boot})
	p.runningAt = time.Now()
	if err := p.graph.Start(gctx); err != nil {
		return err
	}
	p.ready.Store(true)
	p.log.Info("pod: running", "epoch", boot.Epoch, "data_endpoint", p.dataAdv, "gossip", p.gossip)

	var finished <-chan struct{}
	if p.subSide != nil && p.cfg.ExitWhenDone {
		finished = p.subSide.finished
	}
	snapTick := time.NewTicker(p.cfg.SnapshotInterval)
	defer snapTick.Stop()
	snapDone := make(chan struct{}, 1)
	snapBusy, snapWanted := false, false
	var snapCancel context.CancelFunc // cancels the Save in flight
	_, viewVer := p.view.Load()
	viewTick := time.NewTicker(50 * time.Millisecond) // view changes are polled
	defer viewTick.Stop()
	// A subscriber's snapshot is small (its tally), and its publishers can
	// release their outboxes only as fast as it acks durable snapshots: it
	// snapshots every fastSnapshot while values arrive, and every
	// SnapshotInterval otherwise.
	var fastC <-chan time.Time
	var lastApplied, lastValues uint64
	var lastFast time.Time
	if p.subSide != nil && p.cfg.SnapshotInterval > fastSnapshot {
		fast := time.NewTicker(fastSnapshot)
		defer fast.Stop()
		fastC = fast.C
	}
	var runErr error
	done := false
	for !done {
		select {
		case <-ctx.Done():
			p.log.Info("pod: stopping (signal)")
			done = true
		case <-finished:
			p.log.Info("pod: every publisher's stream is complete; finishing")
			done = true
		case <-p.clus.Fenced():
			runErr = p.clus.Err()
			p.log.Error("pod: fenced by a newer incarnation; stopping", "err", runErr)
			done = true
		case <-p.graph.Done():
			runErr = p.graph.Wait()
			if runErr != nil {
				p.log.Error("pod: actor graph stopped", "err", runErr)
			}
			done = true
		case <-snapTick.C:
			snapWanted = true
		case <-viewTick.C:
		case now := <-fastC:
			// Back to back while many values arrive; at a low rate no
			// more often than slowSnapshot.
			a, v := p.subSide.applied.Load(), p.subSide.processed.Load()
			if a != lastApplied && (v-lastValues >= fastSnapshotValues || now.Sub(lastFast) >= slowSnapshot) {
				lastApplied, lastValues, lastFast, snapWanted = a, v, now, true
			}
		case <-snapDone:
			snapBusy = false
			snapCancel()
			snapCancel = nil
		}
		// A membership change (a peer replaced, maybe the one holding this
		// pod's replica) asks for a snapshot at once, so the state is
		// replicated again before the next failure.
		if _, ver := p.view.Load(); ver != viewVer {
			// (cluster.Save itself fails over from a push to a peer that
			// leaves the view while it waits.)
			viewVer, snapWanted = ver, true
		}
		if snapWanted && !snapBusy && !done {
			snapWanted, snapBusy = false, true
			// Bounded, so a push to a peer that hangs without leaving the
			// view (a frozen host) cannot hold up the next snapshot.
			sctx, cancel := context.WithTimeout(context.Background(), 3*p.cfg.SnapshotInterval+time.Second)
			snapCancel = cancel
			p.goTracked(func() {
				defer cancel()
				p.snapshot(sctx)
				snapDone <- struct{}{}
			})
		}
	}
	p.ready.Store(false)
	p.graph.Stop()
	if err := p.graph.Wait(); err != nil && runErr == nil {
		var esc *actors.EscalationError
		if errors.As(err, &esc) {
			runErr = err
		} else {
			p.log.Warn("pod: graph stop", "err", err)
		}
	}
	if snapBusy {
		<-snapDone
	}
	if errors.Is(runErr, cluster.ErrFenced) {
		return runErr // a fenced zombie must not save or send anything
	}
	// Final snapshot: every actor has stopped, so it sees their last states.
	// A finished subscriber waits up to 15 s for a replica (its acks depend
	// on it); otherwise a few seconds, and no retries once no peer is left.
	wait := 3 * time.Second
	if p.subSide != nil && isClosed(p.subSide.finished) {
		wait = 15 * time.Second
	}
	fctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	durable := false
	for {
		if p.snapshot(fctx) {
			durable = true
			break
		}
		if p.view.count() <= 1 || p.pubSide != nil {
			break
		}
		select {
		case <-fctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
		if fctx.Err() != nil {
			break
		}
	}
	if p.subSide != nil {
		p.subSide.finish(durable)
		complete := isClosed(p.subSide.finished)
		if err := p.writeFinal(complete, durable); err != nil {
			p.log.Error("pod: final state", "err", err)
		}
		if complete && finished != nil && runErr == nil && !durable {
			runErr = ErrFinishTimeout
		}
	}
	if p.pubSide != nil {
		p.pubSide.finish()
	}
	p.log.Info("pod: stopped", "err", runErr)
	return runErr
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (p *Pod) goTracked(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// snapshot takes the actors' states and saves them through the cluster. It
// reports whether the snapshot is durable (replicated to a peer, or saved
// alone when the cluster allows that).
func (p *Pod) snapshot(ctx context.Context) bool {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	var marks map[string]SubPubState
	if p.subSide != nil {
		marks = p.subSide.preSnapshot() // before the states: they hold at least this
	}
	states, err := p.graph.SnapshotStates()
	if err != nil {
		p.snapStat.failures.Add(1)
		p.log.Warn("pod: snapshot states", "err", err)
		return false
	}
	p.snapVer++
	snap := &codec.Snapshot{NodeID: p.id, Epoch: p.epoch.Load(), Version: p.snapVer, TakenUnixNano: time.Now().UnixNano(), States: states}
	t0 := time.Now()
	d, err := p.clus.Save(ctx, snap)
	p.snapStat.took.Store(int64(time.Since(t0)))
	p.hist.snapshotSave.Observe(time.Since(t0).Seconds())
	p.snapStat.version.Store(p.snapVer)
	size := 0
	for k, v := range states {
		size += len(k) + len(v)
	}
	p.snapStat.bytes.Store(int64(size))
	if err != nil {
		p.snapStat.failures.Add(1)
		if errors.Is(err, cluster.ErrNoReplica) {
			p.snapStat.saved.Add(1)
		}
		// At most one line per 5 s: a pod without a durable snapshot
		// acknowledges nothing, which an operator wants to know.
		if time.Since(p.snapWarned) > 5*time.Second {
			p.snapWarned = time.Now()
			p.log.Warn("pod: snapshot not durable", "version", p.snapVer, "err", err, "failures", p.snapStat.failures.Load())
		}
		return false
	}
	p.snapStat.saved.Add(1)
	p.snapStat.durable.Add(1)
	p.snapStat.lastDurable.Store(&d)
	if p.subSide != nil {
		p.subSide.durable(marks)
	}
	return true
}

func (p *Pod) writeFinal(complete, durable bool) error {
	st := p.graph.Stats()
	restarts := 0
	for _, a := range st.Actors {
		restarts += a.Restarts
	}
	f := FinalState{
		NodeID: p.id, Epoch: p.epoch.Load(), RestoreSource: p.boot.Source,
		Tally: p.subSide.tallyNow().Pubs, DeadLetters: st.DeadLetters, Restarts: restarts,
		Complete: complete, Durable: durable,
		FirstApplied: p.subSide.firstApply.Load(), LastApplied: p.subSide.lastApply.Load(),
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(p.cfg.DataDir, FinalStateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Close stops the metrics server, leaves the cluster and closes the
// transport. Safe to call twice and after a failed New.
func (p *Pod) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		if p.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = p.http.Shutdown(ctx)
			cancel()
		} else if p.lis != nil {
			_ = p.lis.Close()
		}
		p.prof.close()
		if p.view != nil {
			p.view.stop()
		}
		if p.clus != nil {
			errs = append(errs, p.clus.Close())
		}
		p.wg.Wait()
		if p.driver != nil {
			errs = append(errs, p.driver.Close())
		}
	})
	return errors.Join(errs...)
}

// markDelivering logs, once per process, that the stream moves through
// this pod: the first value through a subscriber's worker, the first ack a
// publisher takes in. scripts/replace-node.sh reads it for kill →
// delivering from the pod's own clock. After the first call it costs one
// atomic load.
func (p *Pod) markDelivering() {
	if p.delivering.Load() || !p.delivering.CompareAndSwap(false, true) {
		return
	}
	p.log.Info("pod: delivering", "after_running_seconds", time.Since(p.runningAt).Seconds())
}
