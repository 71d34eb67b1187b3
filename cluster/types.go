package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

var (
	// ErrConfig wraps every configuration error from New.
	ErrConfig = errors.New("cluster: invalid config")
	// ErrBadKey means a cluster key is not base64 of 16, 24 or 32 bytes.
	ErrBadKey = errors.New("cluster: bad cluster key")
	// ErrJoin means Start could not join any seed before its context ended.
	ErrJoin = errors.New("cluster: join failed")
	// ErrFenced means a higher epoch of this node's own id is live: this
	// incarnation is a zombie and must stop. Err returns it, wrapped with
	// the winner's name and epoch.
	ErrFenced = errors.New("cluster: fenced by a newer incarnation of this node id")
	// ErrNotStarted means Save was called before Start chose an epoch.
	ErrNotStarted = errors.New("cluster: not started")
	// ErrClosed means the Cluster is closed.
	ErrClosed = errors.New("cluster: closed")
	// ErrSnapshot means Save was given a snapshot of another node id or
	// epoch, or one older than the snapshot already saved.
	ErrSnapshot = errors.New("cluster: bad snapshot")
	// ErrNoReplica means no peer acknowledged a snapshot (or there was no
	// peer and Config.DurableAlone is false). The snapshot is saved
	// locally but not durable.
	ErrNoReplica = errors.New("cluster: no replica acknowledged the snapshot")
)

// Role is what a node does, in the application's terms: one non-zero byte
// published in the node's metadata. The cluster never interprets it (it
// replicates to every live peer whatever its role).
type Role uint8

// The steadfast pods' roles, kept here so that their values and names stay
// in one place for both pods and tools. The values are on the wire: append
// only. The cluster itself treats every non-zero Role alike.
const (
	RolePublisher  Role = 1
	RoleSubscriber Role = 2
)

func (r Role) String() string {
	switch r {
	case RolePublisher:
		return "publisher"
	case RoleSubscriber:
		return "subscriber"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses "publisher" or "subscriber".
func ParseRole(s string) (Role, error) {
	switch s {
	case "publisher":
		return RolePublisher, nil
	case "subscriber":
		return RoleSubscriber, nil
	}
	return 0, fmt.Errorf("%w: role %q: want publisher or subscriber", ErrConfig, s)
}

// Member is one live node in the cluster view: the incarnation with the
// highest epoch of its node id (lower ones are fenced and not listed).
type Member struct {
	NodeID       string
	Epoch        uint64
	Role         Role
	DataEndpoint string // host:port of its data transport
	MetricsAddr  string // host:port of its metrics endpoint, may be empty
	Name         string // memberlist name, unique per incarnation: "<node id>#<boot id>"
	GossipAddr   string // host:port of its gossip endpoint
	Self         bool   // this node
}

// EventKind says how the live view changed.
type EventKind uint8

// Event kinds.
const (
	// EventJoined: an incarnation entered the live view (a new node, or a
	// replacement with a higher epoch).
	EventJoined EventKind = iota + 1
	// EventUpdated: a live incarnation changed its metadata.
	EventUpdated
	// EventLeft: an incarnation left the live view because memberlist
	// declared it dead or it left gracefully. memberlist has no callback
	// for "suspect"; a dead node is reported after the suspicion timeout.
	EventLeft
	// EventFenced: an incarnation was displaced by a higher epoch of its
	// node id (or came back with a lower one). It may still be running;
	// everything from it must be rejected. Member.Self means this node.
	EventFenced
)

func (k EventKind) String() string {
	switch k {
	case EventJoined:
		return "joined"
	case EventUpdated:
		return "updated"
	case EventLeft:
		return "left"
	case EventFenced:
		return "fenced"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is a change of the live view.
type Event struct {
	Kind   EventKind
	Member Member
	At     time.Time
}

// Boot is what Start learned: the epoch of this incarnation and the newest
// snapshot of this node id found locally or on a peer.
type Boot struct {
	Epoch uint64
	// Snapshot is the newest snapshot of this node id, nil if none. Its
	// Epoch is lower than Boot.Epoch; the pod restores its states and saves
	// its next snapshot with Boot.Epoch.
	Snapshot *codec.Snapshot
	// Source is "local", "peer:<node id>" or "none".
	Source string
	// Asked is how many peers were asked what they know of this node id;
	// Peers is how many answered within GatherTimeout. Peers < Asked means
	// a newer snapshot may have been missed (logged as a warning).
	Asked, Peers int
	// Took is the time Start spent (join, gather, announce).
	Took time.Duration
}

// Durable describes a saved snapshot that Save reports durable.
type Durable struct {
	Epoch, Version uint64
	// Replicas are the node ids of the peers that acknowledged it before
	// Save returned (more may acknowledge later).
	Replicas []string
	// Alone is true when there was no live peer and Config.DurableAlone
	// allowed a local write to count as durable.
	Alone bool
}

// Stats are counters for metrics. All counters are cumulative.
type Stats struct {
	NodeID string
	Epoch  uint64
	Fenced bool // this incarnation is fenced

	Members         int    // live view size, including this node
	Events          uint64 // events produced
	EventsDropped   uint64 // oldest undrained events dropped (see Cluster.Events)
	FencedMembers   uint64 // incarnations fenced by a higher epoch
	InvalidMeta     uint64 // members ignored because their metadata did not decode
	JoinAttempts    uint64
	MessagesIn      uint64
	MessagesDropped uint64 // inbound messages dropped: inbox full or closing
	BadMessages     uint64 // inbound messages that did not decode

	SnapshotsSaved    uint64
	SnapshotsSent     uint64 // pushes to peers
	SnapshotsAcked    uint64 // pushes acknowledged by peers
	SnapshotsReceived uint64 // replica pushes accepted
	// SnapshotRejects counts rejected replica pushes by reason:
	// "too_large", "malformed", "checksum" (the bytes), "bad_id" (not a
	// valid node id), "mismatch" (header and snapshot disagree, or a
	// snapshot of this node's own id), "not_owner" (pushed by a member of
	// another node id), "fenced" (an epoch below the highest known),
	// "epoch" (not the sender's current epoch), "invalid" (refused by
	// Config.ValidateSnapshot), "stale", "io".
	SnapshotRejects map[string]uint64
	BytesSent       uint64
	BytesReceived   uint64
	ReplicasHeld    int   // node ids this node keeps a replica for
	ReplicaBytes    int64 // their total size
	LastSave        time.Duration
	LastSaveBytes   int
	RestoreSource   string
	// EpochRejects counts EpochTracker.Accept refusals.
	EpochRejects uint64
	// NotMember counts requests dropped because their sender was not a
	// known member within parkTimeout (2 s) of their arrival.
	NotMember uint64
	// GatherRefused counts gather requests for another member's node id.
	GatherRefused uint64
	// RestoreRefused counts snapshots Start did not restore because
	// Config.ValidateSnapshot refused them (the next source was tried).
	RestoreRefused uint64
	// Rereplicated counts pushes of this node's newest snapshot to a new
	// holder after a holder left the live view.
	Rereplicated uint64
	// Relayed counts pushes of another node's replica while that node had
	// no live incarnation (see the keeper in durability.go).
	Relayed uint64
	// ReplicasCollected counts replicas dropped because their node id was
	// not seen for Config.ReplicaRetention.
	ReplicasCollected uint64
}
