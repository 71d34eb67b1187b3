// Package cluster is a pod's cluster membership (hashicorp/memberlist) and
// the replication of its state snapshots, built so that a pod killed and
// replaced under the same node id — new address, empty disk — rejoins at
// once and restores its newest replicated snapshot.
//
// # Identity and epochs
//
// Every incarnation joins memberlist under a unique name, "<node id>#<boot
// id>", and publishes its stable node id, epoch, role, data endpoint and
// metrics address in its metadata. A replacement therefore never fights the
// dead incarnation for its name (memberlist would lock a known name to the
// old address until the dead entry is reaped: 20–60 s); it takes over by
// epoch as soon as it announces one.
//
// Start runs this sequence (see Start for details): join the seeds with
// epoch 0 (peers see the node but keep it out of their live view); ask
// every other node for the highest epoch and newest snapshot it knows for
// this node id; choose epoch = max(local, peers) + 1 and persist it;
// announce it; return the newest snapshot (Boot.Source is "local",
// "peer:<node id>" or "none").
//
// The higher epoch wins everywhere: per node id the live view (Members)
// lists only the incarnation with the highest (epoch, name); a lower one is
// fenced (EventFenced) even while memberlist still thinks it alive. An
// incarnation that sees a higher epoch of its own id closes Fenced() and
// reports Err() wrapping ErrFenced: the pod must stop. Replica pushes from a
// fenced epoch are rejected and counted; pods fence their own traffic (data
// batches, acks) with Epochs().Accept.
//
// # Events
//
// memberlist's callbacks never block on the pod. Changes() is a wake-up
// channel of capacity 1; after a wake-up the pod reads the live view with
// Members() (always current) and, if it wants the transitions, drains
// Events(). Events are coalesced per incarnation, never dropped. There is no
// "suspect" event: memberlist does not report suspicion, so a killed node
// leaves the view after the suspicion timeout (under 1 s with
// DefaultLocalConfig, ~5 s with DefaultConfig), whereas a replacement
// displaces it as soon as it announces its epoch (EventFenced for the old,
// EventJoined for the new).
//
// # Snapshots
//
// Save(ctx, snap) writes the snapshot atomically to the data dir (temp
// file, fsync, rename, fsync dir) and pushes it over memberlist's reliable
// path to up to Replicas live peers, chosen by rendezvous hashing. A push is
// a request with an id and a reply address; the peer verifies the checksum,
// the size cap, the node id and the epoch, keeps it only if it is newer
// (epoch, version) than what it holds, persists it in its own data dir and
// acknowledges. Save returns once at least one peer acknowledged (or, with
// no live peer and Config.DurableAlone, once written locally): only then is
// the state in snap durable, and only then may a subscriber acknowledge what
// it covers. A push whose peer leaves the live view before acknowledging
// (declared dead, left, fenced or superseded by a higher epoch) fails at
// once instead of waiting for ReplicaTimeout, and Save pushes to the next
// live peer in rendezvous order that it has not tried yet; with none left
// it returns ErrNoReplica as soon as membership drops the peer (kill →
// error or failover in ~0.8 s with DefaultLocalConfig, i.e. the failure
// detection time). A torn or corrupt snapshot file is detected by its
// checksum, logged, moved aside and never loaded.
//
// # Between snapshots
//
// A keeper goroutine closes the window between two Saves (durability.go):
// when a holder of this node's newest snapshot leaves the live view, it
// pushes the snapshot to the next ranked peers until Replicas live peers
// hold it; when a node has had no live incarnation for 2 s (it is down,
// and no replacement took over at once), every holder of its replica relays it to the first Replicas
// live members in that node's rendezvous order, so holders replaced one
// after the other while the owner is down do not lose it; and replicas of
// node ids nobody carried for ReplicaRetention (retired nodes) are deleted.
// A relay never replaces a newer replica, and is refused while the owner
// is live. MinAcks 2 makes Save itself wait for two replicas (see Config).
//
// # Bootstrapping under an orchestrator
//
// Seeds may be DNS names that resolve to many addresses (a headless
// Service, "tasks.<service>" in a swarm). Start resolves them afresh before
// every join attempt, tries every address, and logs each failure at info
// level with the seed and the reason, backing off from JoinRetry to
// JoinRetryMax until its context ends. An orchestrator publishes a task's
// name only once it runs, so at first no seed resolves: one node (the
// lowest ordinal) is given StartAloneAfter and starts the cluster alone
// after that wait; the others join it as soon as it is published. After
// Start every node re-resolves its seeds every JoinRetryMax and joins any
// address that is not a member, so clusters that formed apart merge; a
// node id that ran in both is then settled by fencing: the higher (epoch,
// memberlist name) stays live, the other is fenced (Err, Fenced), its
// pushes are refused, and holders replace its replicas with the
// survivor's on the survivor's next Save, whatever their versions.
// Snapshots the fenced incarnation made durable in its half are lost: give
// StartAloneAfter to one node only, so that a node id runs in one half.
//
// # Security: what is and is not protected
//
// Every node id that enters (metadata, messages, snapshots, replica files)
// is checked with nodeid.Validate, so an id never becomes a path outside
// the data dir; every epoch with nodeid.ValidateEpoch (nothing above
// nodeid.MaxEpoch is taken, and the next epoch never wraps to 0); sizes
// are capped (metadata 512 B, names 256 B, snapshots MaxSnapshotBytes,
// queued requests 64 and 4×MaxSnapshotBytes). Config.ValidateSnapshot lets
// the application refuse a snapshot whose content does not decode: it is
// then neither stored as a replica nor restored (Start tries the next
// source) nor written locally.
//
// Requests are served only for members (see rpc.go): the sender must be a
// node memberlist lists as alive, the reply goes to that node's advertised
// gossip address only (never to an address named in the request: no
// reflection), a push must carry the sender's own node id at its current
// epoch, and a gather reads only the requester's own node id (no member
// reads another's snapshot; replica holders do not read from each other).
// Epochs are learned only from membership metadata: nothing named in a
// message raises the epoch tracker, so a forged message fences nobody, and
// EpochTracker.Accept never records an epoch.
//
// With Config.ClusterKey set, memberlist encrypts and authenticates every
// gossip packet and stream (AES-GCM): only key holders are members, and
// only members' requests are served. Rotate a key with Config.ExtraKeys
// (memberlist's keyring): restart every node with the new key accepted as
// an extra key, then with it as ClusterKey and the old one extra, then
// without the old one; no two nodes ever stop understanding each other.
//
// Without a key, membership itself is unauthenticated: anyone who reaches
// the gossip port can join under any node id with any epoch below
// MaxEpoch — fencing the real node, receiving its snapshot pushes, reading
// its replicas through gather — and can send requests claiming a member's
// name (a push in that member's name at its current epoch is stored; the
// validator and the (epoch, version) order are then the only defence).
// What still holds without a key: no reflection to arbitrary addresses, no
// file outside the data dir, no epoch wrap, no fencing by a message (only
// by membership), no read of one member's snapshot by another, bounded
// memory. Run without a key only on a network nobody else can reach.
//
// # Measured (loopback, 3 nodes, 5 snapshots of 256 KiB, no -race)
//
// Median of 7 runs of TestKillAndReplace (reproduce with
// REJOIN_RUNS=7 go test -count=1 -run TestKillAndReplace -v ./cluster):
//
//	                              kill → restored   → accepted by all   → old declared dead
//	DefaultLocalConfig                 10 ms              10 ms               0.95 s
//	DefaultConfig (LAN)                10 ms              10 ms               6.1 s
//	  replacement as a new process     16–20 ms           16–20 ms            (as above)
//
// "Restored" is Start returning with the newest durable snapshot fetched
// from a survivor; "accepted" is every survivor listing the replacement
// (new epoch, new address) in Members. Neither waits for memberlist to
// declare the old incarnation dead. A peer that vanished without a trace
// (a host gone, not a process) can add up to GatherTimeout.
//
// # Usage
//
//	key, err := cluster.KeyFrom(*flagClusterKey) // or $CLUSTER_KEY
//	if err != nil {
//		return err
//	}
//	cfg := cluster.DefaultConfig() // DefaultLocalConfig() on one machine
//	cfg.NodeID, cfg.Role, cfg.DataDir = id, cluster.RoleSubscriber, *flagDataDir
//	cfg.DataEndpoint, cfg.MetricsAddr = *flagData, *flagMetrics
//	cfg.BindAddr, cfg.BindPort = "0.0.0.0", 7946
//	cfg.Seeds = strings.Split(*flagJoin, ",")
//	cfg.ClusterKey, cfg.Logger = key, logger
//	c, err := cluster.New(cfg)
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	boot, err := c.Start(ctx) // blocks until joined, epoch chosen
//	if err != nil {
//		return err
//	}
//	restore(boot.Snapshot) // nil: fresh state; then start the actors
//
//	// later, periodically:
//	snap := &codec.Snapshot{NodeID: id, Epoch: boot.Epoch, Version: v, States: states}
//	if d, err := c.Save(ctx, snap); err == nil {
//		ackUpTo(d.Version) // state in snap is durable
//	}
//
//	// membership:
//	for {
//		select {
//		case <-c.Changes():
//			for _, m := range c.Members() { /* m.Role, m.DataEndpoint, m.Epoch */ }
//		case <-c.Fenced():
//			return c.Err() // a newer incarnation of this node id is live
//		}
//	}
package cluster
