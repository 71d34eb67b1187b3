package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// Files in the data dir.
const (
	snapshotFile = "snapshot.snap" // this node's own newest snapshot
	replicaDir   = "replicas"      // replicas/<node id>.snap: newest replica per peer
	snapExt      = ".snap"
)

// held is a decoded snapshot with its envelope.
type held struct {
	snap *codec.Snapshot
	raw  []byte
	// from is the incarnation (memberlist name) that pushed a replica; ""
	// when loaded from disk. Kept in memory only.
	from string
}

// store keeps this node's own snapshot and the replicas it holds for peers,
// in memory and on disk. Every write is atomic (nodeid.WriteFileAtomic), and
// a snapshot never replaces a newer one (codec.Newer).
type store struct {
	dir string
	max int
	log *slog.Logger

	mu       sync.Mutex
	own      held                 // guarded by mu
	replicas map[string]held      // guarded by mu; by node id
	lastSeen map[string]time.Time // guarded by mu; by node id: last time a node carried it (see collect)
}

// openStore opens dir; ownID is the node id its own snapshot must carry.
func openStore(dir, ownID string, max int, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(filepath.Join(dir, replicaDir), 0o755); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	s := &store{dir: dir, max: max, log: log, replicas: make(map[string]held), lastSeen: make(map[string]time.Time)}
	s.own = s.load(filepath.Join(dir, snapshotFile), ownID)
	entries, err := os.ReadDir(filepath.Join(dir, replicaDir))
	if err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, snapExt) || strings.HasPrefix(name, ".") {
			continue
		}
		id := strings.TrimSuffix(name, snapExt)
		if nodeid.Validate(id) != nil {
			continue
		}
		if h := s.load(filepath.Join(dir, replicaDir, name), id); h.snap != nil {
			s.replicas[id] = h
		}
	}
	return s, nil
}

// load reads and verifies one snapshot file. A missing file yields nothing;
// a torn or corrupt one is logged, moved aside (kept for inspection, never
// loaded) and yields nothing. wantID, if set, must match the snapshot.
func (s *store) load(path, wantID string) held {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return held{}
	}
	if err == nil {
		var snap *codec.Snapshot
		snap, err = codec.DecodeSnapshot(raw, s.max)
		if err == nil && wantID != "" && snap.NodeID != wantID {
			err = fmt.Errorf("file holds node id %q", snap.NodeID)
		}
		if err == nil {
			return held{snap: snap, raw: raw}
		}
	}
	aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
	s.log.Warn("cluster: ignoring unreadable snapshot file", "path", path, "err", oneLine(err), "moved_to", aside)
	_ = os.Rename(path, aside)
	return held{}
}

// ownSnapshot returns this node's newest snapshot (nil if none).
func (s *store) ownSnapshot() held {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.own
}

// saveOwn writes this node's snapshot unless a newer one is saved already.
func (s *store) saveOwn(snap *codec.Snapshot, raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if codec.Newer(s.own.snap, snap) {
		return fmt.Errorf("%w: version (%d, %d) is older than the saved (%d, %d)",
			ErrSnapshot, snap.Epoch, snap.Version, s.own.snap.Epoch, s.own.snap.Version)
	}
	if err := nodeid.WriteFileAtomic(filepath.Join(s.dir, snapshotFile), raw); err != nil {
		return err
	}
	s.own = held{snap: snap, raw: raw}
	return nil
}

// replica returns the replica held for id.
func (s *store) replica(id string) held {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replicas[id]
}

// putReplica stores snap, pushed by the live incarnation from, if it is
// newer than the held one. An equal (epoch, version) is accepted without a
// write (a retried push). A replica of the same epoch pushed by another
// incarnation is replaced whatever its version: two incarnations chose one
// epoch apart (a split start), and from is the one that won when they met.
// It returns the replica held afterwards and whether snap was stale.
func (s *store) putReplica(snap *codec.Snapshot, raw []byte, from string) (held, bool, error) {
	if err := nodeid.Validate(snap.NodeID); err != nil {
		return held{}, false, err // never a path outside replicas/
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.replicas[snap.NodeID]
	rival := from != "" && cur.snap != nil && cur.from != "" && cur.from != from && cur.snap.Epoch == snap.Epoch
	if cur.snap != nil && !rival && !codec.Newer(snap, cur.snap) {
		if cur.from == "" && from != "" && cur.snap.Epoch == snap.Epoch && cur.snap.Version == snap.Version {
			cur.from = from
			s.replicas[snap.NodeID] = cur
		}
		return cur, codec.Newer(cur.snap, snap), nil
	}
	path := filepath.Join(s.dir, replicaDir, snap.NodeID+snapExt)
	if err := nodeid.WriteFileAtomic(path, raw); err != nil {
		return cur, false, err
	}
	h := held{snap: snap, raw: raw, from: from}
	s.replicas[snap.NodeID] = h
	s.lastSeen[snap.NodeID] = time.Now()
	return h, false, nil
}

func (s *store) replicaStats() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.replicas {
		bytes += int64(len(h.raw))
	}
	return len(s.replicas), bytes
}

// replicaList returns the replicas held, by node id.
func (s *store) replicaList() map[string]held {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]held, len(s.replicas))
	for id, h := range s.replicas {
		out[id] = h
	}
	return out
}
