package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// With --media-driver local the runner starts one mediadriver process
// (cmd/mediadriver) in the work dir and every pod attaches to it
// (--aeron-dir); the pods' UDP streams then go through that driver. With
// --aeron-dir the pods attach to a driver the user already runs.

// startDriver starts the local media driver (--media-driver local) and
// waits until its cnc.dat exists.
func (r *Runner) startDriver() error {
	if r.cfg.MediaDriver != "local" {
		return nil
	}
	dir := filepath.Join(r.workDir, "aeron")
	logPath := filepath.Join(r.workDir, "mediadriver.log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(r.binDir, "mediadriver"), "--dir", dir)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = podProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("runner: start mediadriver: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	r.driver, r.driverExited, r.aeronDir = cmd, exited, dir
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "cnc.dat")); err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("runner: mediadriver exited at start (see %s)", logPath)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stopDriver()
			return fmt.Errorf("runner: mediadriver did not lay out %s within 10s (see %s)", dir, logPath)
		}
	}
	fmt.Fprintf(r.con, "runner: mediadriver pid %d, dir %s\n", cmd.Process.Pid, dir)
	return nil
}

// stopDriver stops the local media driver (SIGTERM: it removes what it
// created), SIGKILL after 10 s.
func (r *Runner) stopDriver() {
	if r.driver == nil {
		return
	}
	_ = r.driver.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.driverExited:
	case <-time.After(10 * time.Second):
		_ = r.driver.Process.Kill()
		<-r.driverExited
	}
	r.driver = nil
}
