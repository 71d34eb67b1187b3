package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// KeyEnvVar is the environment variable KeyFrom consults when the flag is empty.
const KeyEnvVar = "CLUSTER_KEY"

// DefaultLabel separates steadfast gossip from other memberlist clusters on
// the same network. It is not authentication; the cluster key is.
const DefaultLabel = "steadfast"

// Config configures a Cluster. Start from DefaultConfig (production LAN) or
// DefaultLocalConfig (one machine, tests) and fill in the node's fields.
type Config struct {
	// NodeID is the stable node id (see package nodeid). Required.
	NodeID string
	// Role is what the node is, in the application's terms; carried in its
	// metadata and reported in Member.Role. The cluster does not interpret
	// it; any non-zero value. Required.
	Role Role
	// DataDir holds the node's epoch, its own snapshot and the replicas it
	// keeps for peers. Required.
	DataDir string
	// DataEndpoint is the host:port of the node's data transport, published
	// to peers. At most MaxEndpointLen bytes.
	DataEndpoint string
	// MetricsAddr is the host:port of the node's metrics endpoint, published
	// to peers. At most MaxEndpointLen bytes. May be empty.
	MetricsAddr string

	// BindAddr and BindPort are where gossip listens (UDP and TCP). Port 0
	// picks a free port; LocalAddr reports it.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what peers dial; empty/0 means
	// the bind address and the actual bound port.
	AdvertiseAddr string
	AdvertisePort int

	// Seeds are host:port gossip addresses to join through. Addresses equal
	// to this node's own are ignored. With no other seed the node starts a
	// cluster of its own.
	Seeds []string
	// Seeds may be DNS names ("tasks.subscriber:7946", a headless
	// Service): each is resolved again before every attempt and every
	// address it resolves to is tried, so seeds that an orchestrator
	// publishes only once they run are found as they appear.
	//
	// JoinRetry is the first delay between join attempts; it doubles up to
	// JoinRetryMax. Start keeps trying until a seed answers or its context
	// ends (or StartAloneAfter passes). Every failed attempt is logged at
	// info level with each seed and the reason. After Start, the seeds are
	// resolved again every JoinRetryMax and any address that is not a
	// known member is joined: two clusters that formed apart (see
	// StartAloneAfter) merge as soon as one's seeds resolve to the other.
	JoinRetry    time.Duration
	JoinRetryMax time.Duration
	// StartAloneAfter, if > 0, lets Start begin a new cluster alone when no
	// seed answered within that time, instead of waiting for ever. Give it
	// to one node only (the lowest ordinal of a StatefulSet or swarm
	// service): every node that waits then joins it as soon as its name
	// resolves. Should two clusters form anyway, they merge when the seeds
	// resolve (see JoinRetryMax), and fencing by epoch decides any node id
	// that runs in both: the higher (epoch, name) stays, the other is
	// fenced and must stop, and its pushes are refused from then on.
	StartAloneAfter time.Duration
	// LookupHost resolves a seed's host name to addresses. Nil means
	// net.DefaultResolver.LookupHost. Tests use it to make names resolve
	// late.
	LookupHost func(ctx context.Context, host string) ([]string, error)

	// ClusterKey is the gossip encryption key (AES, 16, 24 or 32 bytes);
	// see KeyFrom. Nil disables encryption, which lets anyone on the
	// network join and inject messages: only for tests and local runs.
	ClusterKey []byte
	// ExtraKeys are further gossip keys accepted while a key is rotated
	// (memberlist's keyring): gossip is encrypted with ClusterKey and
	// decrypted with any of them. Each 16, 24 or 32 bytes; needs ClusterKey.
	ExtraKeys [][]byte
	// Label is put on every gossip packet and stream; nodes with another
	// label ignore them. Defaults to DefaultLabel.
	Label string

	// Replicas is how many peers each snapshot is pushed to (K). With fewer
	// live peers, all of them are used. Default 2.
	Replicas int
	// MinAcks is how many replica acknowledgements Save waits for (at
	// most Replicas, and at most the number of live peers). Default 1.
	//
	// The trade-off: with 1, Save returns after the fastest peer persisted
	// the snapshot (lowest latency, and the pod acknowledges sooner), and
	// the other pushes finish in the background; until they do, or until
	// the keeper re-replicates after that peer leaves, the state lives on
	// one peer, so losing that peer and then this node (both with their
	// disks) in that window loses it. With 2, Save waits for the slower of
	// two peers (about one more round trip and fsync; a stalled peer is
	// replaced by the next, see Save), and any single loss in any order is
	// survived. With fewer live peers than MinAcks, Save needs all of them.
	MinAcks int
	// MaxSnapshotBytes caps an encoded snapshot, both when saving and when
	// receiving a replica. Default codec.DefaultMaxSnapshot (16 MiB).
	// memberlist itself refuses stream messages over 20 MiB.
	MaxSnapshotBytes int
	// ReplicaTimeout bounds one push of a snapshot to a peer and the wait
	// for its acknowledgement. A push to a peer that leaves the live view
	// (dead, left, fenced) fails at once, without waiting for it.
	ReplicaTimeout time.Duration
	// GatherTimeout bounds how long Start waits for peers to report the
	// highest epoch and the newest snapshot they know for this node id.
	GatherTimeout time.Duration
	// AnnounceTimeout bounds how long Start waits for the broadcast of the
	// chosen epoch to leave this node.
	AnnounceTimeout time.Duration
	// LeaveTimeout bounds the graceful leave broadcast in Close.
	LeaveTimeout time.Duration
	// ReplicaRetention is how long a replica is kept after no node carries
	// its node id any more (a retired node: scaled down, never replaced).
	// Then it is deleted from memory and disk. A node that stays down longer
	// than this loses its state when it comes back with an empty disk:
	// choose it longer than any outage you recover from. 0 keeps replicas
	// for ever. Default 24 h.
	ReplicaRetention time.Duration
	// DurableAlone makes Save report a snapshot durable once it is written
	// locally when there is no live peer at all (a cluster of one cannot
	// replicate). When false, Save returns ErrNoReplica in that case.
	// Default true. With at least one live peer, Save always needs a
	// replica's acknowledgement.
	DurableAlone bool

	// ValidateSnapshot, if set, is the application's check of a snapshot's
	// content (typically: decode every state and check it). It is called
	// on every replica push before it is stored (a refused one is counted
	// as "invalid" and never stored) and by Start on the local snapshot and
	// on every snapshot fetched from a peer before it is restored or kept
	// locally (a refused one is skipped, counted in Stats.RestoreRefused,
	// and the next-newest source is tried). It must not keep snap and must
	// be safe for concurrent use; a panic in it counts as a refusal.
	ValidateSnapshot func(snap *codec.Snapshot) error

	// Logger receives the cluster's own log lines and memberlist's, mapped
	// to slog levels (memberlist's DEBUG lines are many). Nil discards all.
	// The cluster adds no node_id attribute: give it a logger that names
	// the node already. Durations are logged in seconds (keys *_seconds).
	Logger *slog.Logger

	// Memberlist is the base memberlist configuration. New copies it and
	// overrides Name, bind/advertise addresses, SecretKey, Label, Logger and
	// the delegates. Nil means DefaultConfig's.
	Memberlist *memberlist.Config

	// relayGrace overrides relayGrace (tests).
	relayGrace time.Duration

	// epochOverride forces the chosen epoch (tests that replay a stale
	// incarnation). 0 means choose normally.
	epochOverride uint64
}

// DefaultConfig returns a configuration for a LAN: memberlist's
// DefaultLANConfig with DeadNodeReclaimTime 1 s, TCPTimeout 5 s and no
// compression, join
// retry every 1 s (backing off to 8 s), K = 2, 16 MiB snapshots.
func DefaultConfig() Config {
	ml := memberlist.DefaultLANConfig()
	ml.DeadNodeReclaimTime = time.Second
	ml.TCPTimeout = 5 * time.Second
	// memberlist's LZW on every stream makes a 4 MiB Save 2–4× slower on
	// a LAN (BenchmarkSave); receivers still accept compressed messages.
	ml.EnableCompression = false
	return Config{
		BindAddr:         "0.0.0.0",
		BindPort:         7946,
		JoinRetry:        time.Second,
		JoinRetryMax:     8 * time.Second,
		Label:            DefaultLabel,
		Replicas:         2,
		MinAcks:          1,
		MaxSnapshotBytes: codec.DefaultMaxSnapshot,
		ReplicaTimeout:   10 * time.Second,
		GatherTimeout:    2 * time.Second,
		AnnounceTimeout:  2 * time.Second,
		LeaveTimeout:     time.Second,
		ReplicaRetention: 24 * time.Hour,
		DurableAlone:     true,
		Memberlist:       ml,
	}
}

// DefaultLocalConfig returns a configuration for nodes on one machine and
// for tests: 127.0.0.1 on a free port, ProbeInterval 200 ms, ProbeTimeout
// 200 ms, SuspicionMult 2, GossipInterval 50 ms (kill → dead in under a
// second), join retry every 250 ms.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	ml := memberlist.DefaultLocalConfig()
	ml.ProbeInterval = 200 * time.Millisecond
	ml.ProbeTimeout = 200 * time.Millisecond
	ml.SuspicionMult = 2
	ml.SuspicionMaxTimeoutMult = 2
	ml.GossipInterval = 50 * time.Millisecond
	ml.PushPullInterval = 2 * time.Second
	ml.GossipToTheDeadTime = 2 * time.Second
	ml.DeadNodeReclaimTime = time.Millisecond
	ml.TCPTimeout = 2 * time.Second
	ml.EnableCompression = false
	c.Memberlist = ml
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.JoinRetry = 250 * time.Millisecond
	c.JoinRetryMax = time.Second
	c.ReplicaTimeout = 5 * time.Second
	c.AnnounceTimeout = time.Second
	c.LeaveTimeout = 500 * time.Millisecond
	return c
}

// MaxEndpointLen bounds DataEndpoint and MetricsAddr so that node metadata
// stays within memberlist's 512 bytes.
const MaxEndpointLen = 190

// ParseKey decodes a base64 (standard or URL alphabet, padded or not)
// cluster key of 16, 24 or 32 bytes. An empty string yields a nil key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %v", ErrBadKey, err)
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// KeyFrom parses the --cluster-key flag value, or $CLUSTER_KEY when the
// flag is empty. Both empty yields a nil key (no encryption).
func KeyFrom(flag string) ([]byte, error) {
	if flag == "" {
		flag = os.Getenv(KeyEnvVar)
	}
	return ParseKey(flag)
}

func checkKey(key []byte) error {
	switch len(key) {
	case 0, 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: %d bytes, want 16, 24 or 32", ErrBadKey, len(key))
}

func (c *Config) validate() error {
	var errs []error
	if err := nodeid.Validate(c.NodeID); err != nil {
		errs = append(errs, err)
	}
	if c.Role == 0 {
		errs = append(errs, errors.New("role is required (any non-zero value)"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if len(c.DataEndpoint) > MaxEndpointLen || len(c.MetricsAddr) > MaxEndpointLen {
		errs = append(errs, fmt.Errorf("data endpoint and metrics address must be at most %d bytes", MaxEndpointLen))
	}
	if err := checkKey(c.ClusterKey); err != nil {
		errs = append(errs, err)
	}
	for _, k := range c.ExtraKeys {
		if err := checkKey(k); err != nil || len(k) == 0 || len(c.ClusterKey) == 0 {
			errs = append(errs, fmt.Errorf("%w: extra keys need a cluster key and 16, 24 or 32 bytes each", ErrBadKey))
			break
		}
	}
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas %d: want at least 1", c.Replicas))
	}
	if c.MinAcks < 1 || c.MinAcks > c.Replicas {
		errs = append(errs, fmt.Errorf("min acks %d: want 1..replicas (%d)", c.MinAcks, c.Replicas))
	}
	if c.ReplicaRetention < 0 {
		errs = append(errs, fmt.Errorf("replica retention %v: want >= 0", c.ReplicaRetention))
	}
	if c.MaxSnapshotBytes <= 0 {
		errs = append(errs, fmt.Errorf("max snapshot bytes %d: want > 0", c.MaxSnapshotBytes))
	}
	for name, d := range map[string]time.Duration{
		"join retry": c.JoinRetry, "replica timeout": c.ReplicaTimeout,
		"gather timeout": c.GatherTimeout, "announce timeout": c.AnnounceTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: want > 0", name, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.JoinRetryMax < c.JoinRetry {
		c.JoinRetryMax = c.JoinRetry
	}
	if c.Label == "" {
		c.Label = DefaultLabel
	}
	return nil
}
