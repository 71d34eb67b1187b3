package orchtest

import (
	"os"
	"path/filepath"
	"syscall"
)

// The swarm test runs `docker swarm init/leave`, which, on engine 20.10,
// breaks the DNS of a compose network in use (moby/moby#45144: after
// `swarm leave`, names on a bridge network that existed at the time no
// longer resolve), as internal/deploytest's compose scenario saw when both
// ran at once (`go test ./...` runs packages in parallel). Both packages
// take this lock (internal/deploytest: lockEngine) so they take turns; this
// one holds it for the life of its test binary and the kernel releases it
// when the binary exits.
//
// engineLock keeps the locked file reachable: an *os.File that is no longer
// referenced is closed by its finalizer at the next garbage collection,
// which drops the lock (how the swarm test once ran in the middle of the
// compose scenario).
var engineLock *os.File

func init() {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "steadfast-docker-engine.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return // no lock: run anyway
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return
	}
	engineLock = f // locked until the process exits
}
