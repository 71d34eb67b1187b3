package orchtest

import (
	"os"
	"path/filepath"
	"syscall"
)

// The swarm test runs `docker swarm init/leave`, which, on engine 20.10,
// broke the DNS of a compose network in use by internal/deploytest's
// compose scenario when both ran at once (`go test ./...` runs packages in
// parallel). Both packages take this lock (internal/deploytest: lockEngine)
// so they take turns; this one holds it for the life of its test binary and
// the kernel releases it when the binary exits.
func init() {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "steadfast-docker-engine.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return // no lock: run anyway
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	// f stays open (and locked) until the process exits.
}
