// Package nodeid resolves a pod's stable node id and keeps its epoch.
//
// A node id names a pod across restarts and replacements. Resolve takes it
// from the --node-id flag, else the NODE_ID environment variable, else the
// file "node-id" in the data dir, else generates one and saves it there.
// Every id is validated: 1..64 characters from [A-Za-z0-9._-].
//
// An epoch numbers the incarnations of one node id and strictly increases
// across starts, also when the disk is empty: the pod takes
// Next(LoadEpoch(dir), highest epoch any live peer knows for the id) once
// membership is up and before its actors start, and saves it with SaveEpoch
// (package cluster does both during Start). Epoch 0 means "not chosen yet".
//
// Usage:
//
//	id, src, err := nodeid.Resolve(*flagNodeID, *flagDataDir)
//	if err != nil {
//		return err // e.g. nodeid: invalid node id "a b": ...
//	}
//	log.Info("node id", "id", id, "source", src)
//
//	local, err := nodeid.LoadEpoch(*flagDataDir)
//	// ... learn the peers' highest epoch for id ...
//	epoch := nodeid.Next(local, peers)
//	err = nodeid.SaveEpoch(*flagDataDir, epoch)
package nodeid
