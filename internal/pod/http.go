package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/steadfast-pods/steadfast/internal/buildinfo"
)

// The pod's HTTP endpoints (on --metrics-addr):
//
//	/metrics  Prometheus text format
//	/livez    200 while the process serves HTTP (liveness: restart it if not)
//	/readyz   200 once the pod joined, restored its state and runs its actors,
//	          503 before that, while stopping and once fenced (readiness)
//	/healthz  same as /readyz (kept for the images' HEALTHCHECK and older scripts)
//	/status   the pod's view of the cluster: JSON (Accept: application/json or
//	          ?format=json) or aligned plain text (the default, for curl)

// HTTP server limits. Slow or idle clients must not hold the pod's file
// descriptors: a request must arrive within httpReadTimeout, idle keep-alive
// connections are closed after httpIdleTimeout, at most maxHTTPConns
// connections are open at once, and above httpEvictAbove the oldest idle
// keep-alive connections are closed so that new ones (a probe, a scrape) are
// always accepted.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 30 * time.Second
	httpMaxHeaderBytes    = 16 << 10
	maxHTTPConns          = 128
	httpEvictAbove        = maxHTTPConns * 3 / 4
)

// serveHTTP starts the HTTP server on p.lis (a no-op without one). It is
// called first in Run, so /livez and /readyz answer while the pod joins.
func (p *Pod) serveHTTP() {
	if p.lis == nil {
		return
	}
	p.reg.MustRegister(buildInfo())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", p.readyz)
	mux.HandleFunc("/healthz", p.readyz)
	mux.HandleFunc("/status", p.status)
	p.http = newHTTPServer(mux)
	lis := netutil.LimitListener(p.lis, maxHTTPConns)
	p.goTracked(func() {
		if err := p.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("pod: metrics server", "err", err)
		}
	})
}

// newHTTPServer returns a server with the pod's timeouts and idle-connection
// eviction (see maxHTTPConns).
func newHTTPServer(h http.Handler) *http.Server {
	t := &connTracker{state: map[net.Conn]connInfo{}}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ConnState:         t.track,
	}
}

// connTracker follows the server's connections and closes the oldest idle
// ones when too many are open.
type connTracker struct {
	mu    sync.Mutex
	state map[net.Conn]connInfo // guarded by mu
}

type connInfo struct {
	idle  bool
	since time.Time
}

func (t *connTracker) track(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateNew, http.StateActive:
		t.state[c] = connInfo{}
	case http.StateIdle:
		t.state[c] = connInfo{idle: true, since: time.Now()}
	case http.StateHijacked, http.StateClosed:
		delete(t.state, c)
		return
	}
	if len(t.state) <= httpEvictAbove {
		return
	}
	var idle []net.Conn
	for k, v := range t.state {
		if v.idle {
			idle = append(idle, k)
		}
	}
	slices.SortFunc(idle, func(a, b net.Conn) int { return t.state[a].since.Compare(t.state[b].since) })
	for _, k := range idle {
		if len(t.state) <= httpEvictAbove {
			break
		}
		// Closing an idle keep-alive connection is what IdleTimeout does
		// anyway; clients open a new one. Its StateClosed arrives later
		// (from its own goroutine): drop it from the count now.
		_ = k.Close()
		delete(t.state, k)
	}
}

// buildInfo is steadfast_build_info: constant 1 labelled with the version.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "steadfast_build_info",
		Help:        "Constant 1, labelled with the pods' version (as --version prints it) and Go version.",
		ConstLabels: prometheus.Labels{"version": buildinfo.Version(), "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

// Phases reported by /readyz and /status.
const (
	PhaseJoining   = "joining"   // joining the cluster, gathering snapshots
	PhaseRestoring = "restoring" // restoring the actors' states
	PhaseReady     = "ready"     // running the actors
	PhaseStopping  = "stopping"  // stopping (final snapshot)
	PhaseFenced    = "fenced"    // a newer incarnation of this node id is live
)

func (p *Pod) phase() string {
	switch {
	case p.clus != nil && isClosed(p.clus.Fenced()):
		return PhaseFenced
	case p.ready.Load():
		return PhaseReady
	case p.epoch.Load() == 0:
		return PhaseJoining
	case p.running.Load() == nil:
		return PhaseRestoring
	}
	return PhaseStopping
}

func (p *Pod) readyz(w http.ResponseWriter, _ *http.Request) {
	ph := p.phase()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ph != PhaseReady {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", ph)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// Status is what /status reports: this pod's view of the cluster.
type Status struct {
	NodeID        string  `json:"node_id"`
	Role          string  `json:"role"`
	Epoch         uint64  `json:"epoch"`
	Phase         string  `json:"phase"`
	Ready         bool    `json:"ready"`
	Version       string  `json:"version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	GossipAddr    string  `json:"gossip_addr"`
	DataEndpoint  string  `json:"data_endpoint"`
	MetricsAddr   string  `json:"metrics_addr,omitempty"`
	// RestoreSource: local, peer:<node id> or none ("" before restore).
	RestoreSource string `json:"restore_source,omitempty"`

	Members  []StatusMember  `json:"members"`
	Replicas []StatusReplica `json:"replicas_held"`
	Snapshot *StatusSnapshot `json:"snapshot,omitempty"`
	Streams  []StatusStream  `json:"streams"`

	// MediaDriver: the external driver of a pod run with --aeron-dir
	// (absent with the embedded driver).
	MediaDriver *MediaDriverStatus `json:"media_driver,omitempty"`

	Publisher  *StatusPublisher  `json:"publisher,omitempty"`
	Subscriber *StatusSubscriber `json:"subscriber,omitempty"`
}

// StatusMember is one incarnation known to this pod's membership.
type StatusMember struct {
	NodeID string `json:"node_id"`
	Epoch  uint64 `json:"epoch"`
	Role   string `json:"role"`
	// State: live, suspect, fenced, starting or invalid (cluster.Node*).
	State        string `json:"state"`
	Self         bool   `json:"self,omitempty"`
	GossipAddr   string `json:"gossip_addr"`
	DataEndpoint string `json:"data_endpoint,omitempty"`
	MetricsAddr  string `json:"metrics_addr,omitempty"`
}

// StatusReplica is a replica snapshot this pod holds for a peer.
type StatusReplica struct {
	NodeID     string  `json:"node_id"`
	Epoch      uint64  `json:"epoch"`
	Version    uint64  `json:"version"`
	Bytes      int     `json:"bytes"`
	AgeSeconds float64 `json:"age_seconds"`
}

// StatusSnapshot is this pod's own newest snapshot.
type StatusSnapshot struct {
	Epoch      uint64  `json:"epoch"`
	Version    uint64  `json:"version"`
	Bytes      int     `json:"bytes"`
	AgeSeconds float64 `json:"age_seconds"`
	// Holders: the live peers holding version HeldVersion, the newest a
	// peer acknowledged (by push or re-replication; a newer one may be on
	// its way). DurableVersion: the last version Save reported durable.
	Holders        []string `json:"holders"`
	HeldVersion    uint64   `json:"held_version"`
	DurableVersion uint64   `json:"durable_version"`
	Saved          uint64   `json:"saved"`
	Durable        uint64   `json:"durable"`
	Failures       uint64   `json:"failures"`
}

// StatusStream is one stream this pod takes part in, seen from this pod.
// Out: a publisher's stream to subscriber Peer; in: a subscriber's stream
// from publisher Peer.
type StatusStream struct {
	Peer      string `json:"peer"`
	Direction string `json:"direction"` // "out" or "in"
	Epoch     uint64 `json:"epoch"`     // the peer's epoch as last heard
	// Out: the subscriber's acknowledged seq, the next seq to offer, the
	// breaker state, values offered and replayed by this incarnation.
	Acked    uint64 `json:"acked,omitempty"`
	Next     uint64 `json:"next,omitempty"`
	Breaker  string `json:"breaker,omitempty"`
	Sent     uint64 `json:"sent,omitempty"`
	Replayed uint64 `json:"replayed,omitempty"`
	// In: the last seq applied, the last seq in a durable snapshot (what
	// acks report), the end of stream (0 until known), values applied,
	// dead-lettered and lost.
	Applied   uint64 `json:"applied,omitempty"`
	Committed uint64 `json:"committed,omitempty"`
	End       uint64 `json:"end,omitempty"`
	Count     uint64 `json:"count,omitempty"`
	Dead      uint64 `json:"dead_lettered,omitempty"`
	Lost      uint64 `json:"lost,omitempty"`
}

// StatusPublisher is a publisher's own progress.
type StatusPublisher struct {
	EndSeq         uint64 `json:"end_seq"` // 0: unbounded
	LastSeq        uint64 `json:"last_seq"`
	OutboxValues   int    `json:"outbox_values"`
	OutboxCapacity int    `json:"outbox_capacity"`
	OutboxFull     bool   `json:"outbox_full"`
	Complete       bool   `json:"complete"`
}

// StatusSubscriber is a subscriber's own progress.
type StatusSubscriber struct {
	Done        bool     `json:"done"`
	DeadLetters []uint64 `json:"dead_lettered_values,omitempty"`
}

// started is when the process loaded this package (uptime).
var started = time.Now()

// Status returns the pod's status (what /status serves).
func (p *Pod) Status() Status {
	now := time.Now()
	s := Status{
		NodeID: p.id, Role: p.cfg.Role.String(), Epoch: p.epoch.Load(), Phase: p.phase(), Ready: p.ready.Load(),
		Version: buildinfo.Version(), UptimeSeconds: now.Sub(started).Seconds(),
		GossipAddr: p.gossip, DataEndpoint: p.dataAdv, MetricsAddr: p.MetricsAddr(),
		Members: []StatusMember{}, Replicas: []StatusReplica{}, Streams: []StatusStream{},
	}
	if run := p.running.Load(); run != nil && run.boot != nil {
		s.RestoreSource = run.boot.Source
	}
	if p.driver != nil {
		s.MediaDriver = mediaDriverStatus(p.driver)
	}
	if p.clus != nil {
		for _, n := range p.clus.Nodes() {
			s.Members = append(s.Members, StatusMember{NodeID: n.NodeID, Epoch: n.Epoch, Role: n.Role.String(), State: n.State,
				Self: n.Self, GossipAddr: n.GossipAddr, DataEndpoint: n.DataEndpoint, MetricsAddr: n.MetricsAddr})
		}
		for _, r := range p.clus.Replicas() {
			s.Replicas = append(s.Replicas, StatusReplica{NodeID: r.NodeID, Epoch: r.Epoch, Version: r.Version,
				Bytes: r.Bytes, AgeSeconds: age(now, r.Taken)})
		}
		if own, ok := p.clus.OwnSnapshot(); ok {
			ss := &StatusSnapshot{Epoch: own.Epoch, Version: own.Version, Bytes: own.Bytes, AgeSeconds: age(now, own.Taken), Holders: []string{}}
			if d := p.snapStat.lastDurable.Load(); d != nil {
				ss.DurableVersion = d.Version
			}
			_, ss.HeldVersion, ss.Holders = p.clus.Holders()
			if ss.Holders == nil {
				ss.Holders = []string{}
			}
			ss.Saved, ss.Durable, ss.Failures = p.snapStat.saved.Load(), p.snapStat.durable.Load(), p.snapStat.failures.Load()
			s.Snapshot = ss
		}
	}
	if pb := p.pubSide; pb != nil {
		st := pb.status.Load()
		s.Publisher = &StatusPublisher{EndSeq: pb.total, LastSeq: st.Last, OutboxValues: st.OutboxLen,
			OutboxCapacity: st.OutboxCap, OutboxFull: st.OutboxFull, Complete: st.Complete}
		for _, sub := range st.Subs {
			s.Streams = append(s.Streams, StatusStream{Peer: sub.ID, Direction: "out", Epoch: sub.Epoch, Acked: sub.Acked,
				Next: sub.Next, Breaker: sub.State.String(), Sent: sub.Sent, Replayed: sub.Replayed})
		}
	}
	if sb := p.subSide; sb != nil {
		s.Subscriber = &StatusSubscriber{Done: isClosed(sb.finished)}
		var committed map[string]pubCommit
		if dm := sb.durableM.Load(); dm != nil {
			committed = dm.committed
		}
		t := sb.tallyPub.Load()
		for id, pt := range t.Pubs {
			s.Streams = append(s.Streams, StatusStream{Peer: id, Direction: "in", Epoch: pt.Epoch, Applied: pt.LastSeq,
				Committed: committed[id].Seq, End: pt.EndSeq, Count: pt.Count, Dead: pt.DeadCount, Lost: pt.Skipped})
			s.Subscriber.DeadLetters = append(s.Subscriber.DeadLetters, pt.DeadLettered...)
		}
		slices.Sort(s.Subscriber.DeadLetters)
	}
	slices.SortFunc(s.Streams, func(a, b StatusStream) int { return strings.Compare(a.Peer, b.Peer) })
	return s
}

func age(now, t time.Time) float64 {
	if t.IsZero() || t.UnixNano() <= 0 {
		return 0
	}
	return max(0, now.Sub(t).Seconds())
}

// status serves Status as JSON or as plain text.
func (p *Pod) status(w http.ResponseWriter, r *http.Request) {
	s := p.Status()
	if wantJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_ = WriteStatusText(w, s)
}

// wantJSON: ?format=json, or an Accept header preferring application/json
// (curl's "*/*" gets text).
func wantJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "text":
		return false
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.TrimSpace(mt) {
		case "application/json":
			return true
		case "text/plain", "text/*":
			return false
		}
	}
	return false
}

// WriteStatusText writes s as aligned plain text.
func WriteStatusText(w io.Writer, s Status) error {
	fmt.Fprintf(w, "node %s  role %s  epoch %d  phase %s  version %s  up %.0fs\n", s.NodeID, s.Role, s.Epoch, s.Phase, s.Version, s.UptimeSeconds)
	fmt.Fprintf(w, "gossip %s  data %s  metrics %s  restored from %s\n", s.GossipAddr, s.DataEndpoint, orDash(s.MetricsAddr), orDash(s.RestoreSource))
	if md := s.MediaDriver; md != nil {
		state := fmt.Sprintf("attached (pid %d)", md.Pid)
		if !md.Attached {
			state = fmt.Sprintf("LOST for %.1fs, waiting for it (%s)", md.LostSeconds, md.LastError)
		}
		fmt.Fprintf(w, "media driver %s  %s  lost %d, reattached %d\n", md.Dir, state, md.Losses, md.Reattaches)
	}

	fmt.Fprintf(w, "\nmembers (%d)\n", len(s.Members))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE ID\tEPOCH\tROLE\tSTATE\tGOSSIP\tDATA\tMETRICS\t")
	for _, m := range s.Members {
		self := ""
		if m.Self {
			self = " (self)"
		}
		fmt.Fprintf(tw, "  %s%s\t%d\t%s\t%s\t%s\t%s\t%s\n", m.NodeID, self, m.Epoch, m.Role, m.State, m.GossipAddr, orDash(m.DataEndpoint), orDash(m.MetricsAddr))
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nreplicas held (%d)\n", len(s.Replicas))
	if len(s.Replicas) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NODE ID\tEPOCH\tVERSION\tBYTES\tAGE\t")
		for _, r := range s.Replicas {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%.1fs\n", r.NodeID, r.Epoch, r.Version, r.Bytes, r.AgeSeconds)
		}
		_ = tw.Flush()
	}

	fmt.Fprintln(w, "\nown snapshot")
	if sn := s.Snapshot; sn == nil {
		fmt.Fprintln(w, "  none saved yet")
	} else {
		holders := "none"
		if len(sn.Holders) > 0 {
			holders = strings.Join(sn.Holders, ", ")
		}
		fmt.Fprintf(w, "  epoch %d version %d, %d bytes, %.1fs old; version %d held by %s; last durable %d (saved %d, durable %d, failed %d)\n",
			sn.Epoch, sn.Version, sn.Bytes, sn.AgeSeconds, sn.HeldVersion, holders, sn.DurableVersion, sn.Saved, sn.Durable, sn.Failures)
	}

	fmt.Fprintf(w, "\nstreams (%d)\n", len(s.Streams))
	if len(s.Streams) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if s.Publisher != nil {
			fmt.Fprintln(tw, "  TO\tEPOCH\tACKED\tNEXT\tBREAKER\tSENT\tREPLAYED\t")
			for _, st := range s.Streams {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%d\t%d\n", st.Peer, st.Epoch, st.Acked, st.Next, st.Breaker, st.Sent, st.Replayed)
			}
		} else {
			fmt.Fprintln(tw, "  FROM\tEPOCH\tAPPLIED\tCOMMITTED\tEND\tCOUNT\tDEAD\tLOST\t")
			for _, st := range s.Streams {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", st.Peer, st.Epoch, st.Applied, st.Committed, st.End, st.Count, st.Dead, st.Lost)
			}
		}
		_ = tw.Flush()
	}
	if pb := s.Publisher; pb != nil {
		fmt.Fprintf(w, "\npublisher: last seq %d of %d, outbox %d/%d values, full %v, complete %v\n",
			pb.LastSeq, pb.EndSeq, pb.OutboxValues, pb.OutboxCapacity, pb.OutboxFull, pb.Complete)
	}
	if sb := s.Subscriber; sb != nil {
		fmt.Fprintf(w, "\nsubscriber: done %v, dead-lettered values %v\n", sb.Done, sb.DeadLetters)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
