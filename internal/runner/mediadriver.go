package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// With --media-driver local the runner starts one mediadriver process
// (cmd/mediadriver) in the work dir and every pod attaches to it
// (--aeron-dir). With --local-transport ipc (the default) the pods also
// get --aeron-ipc and exchange their streams over aeron:ipc through it
// (internal/pod/ipc.go); with udp their UDP streams go through it. With
// --aeron-dir the pods attach to a driver the user already runs, over UDP.
//
// --kill driver (or any) SIGKILLs the local driver. The pods notice its
// silent heartbeat after --driver-timeout and wait for it; the runner
// starts a new one on the same directory once the dead one's heartbeat is
// --driver-timeout old (the new driver refuses a younger one as a live
// driver's, exit status driverActiveExit, and reclaims an older one's
// files), and the pods reattach by themselves.

// driverActiveExit is cmd/mediadriver's exit status when a live driver
// holds its directory.
const driverActiveExit = 3

// errDriverActive: the new driver found the old one's heartbeat too young.
var errDriverActive = errors.New("runner: the media driver's directory still has a live heartbeat")

// driverNode names the media driver in kill marks.
const driverNode = "mediadriver"

// driverLog is the local driver's log in the work dir (every incarnation
// appends to it).
func (r *Runner) driverLog() string { return filepath.Join(r.workDir, "mediadriver.log") }

// startDriver starts the local media driver (--media-driver local) and
// waits until its cnc.dat exists.
func (r *Runner) startDriver() error {
	if r.cfg.MediaDriver != "local" {
		return nil
	}
	dir := filepath.Join(r.workDir, "aeron")
	logPath := r.driverLog()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(r.binDir, "mediadriver"), "--dir", dir, "--driver-timeout", r.cfg.DriverTimeout.String())
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
	r.driverStarts++
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cncReady(dir, cmd.Process.Pid) {
			break
		}
		select {
		case <-exited:
			r.driver = nil
			if cmd.ProcessState.ExitCode() == driverActiveExit {
				return errDriverActive
			}
			return fmt.Errorf("runner: mediadriver exited at start with status %d (see %s)", cmd.ProcessState.ExitCode(), logPath)
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

// cncReady reports whether dir holds a cnc.dat laid out by process pid
// (not the one a killed driver left).
func cncReady(dir string, pid int) bool {
	m, err := cnc.MapFile(filepath.Join(dir, cnc.FileName))
	if err != nil {
		return false
	}
	defer m.Close()
	c, err := cnc.Open(m.Data)
	return err == nil && c.Meta.Pid == int64(pid) && c.ToDriver.ConsumerHeartbeat() > 0
}

// driverHeartbeat returns when the driver in dir last heartbeat (zero if
// its cnc.dat cannot be read).
func driverHeartbeat(dir string) time.Time {
	m, err := cnc.MapFile(filepath.Join(dir, cnc.FileName))
	if err != nil {
		return time.Time{}
	}
	defer m.Close()
	c, err := cnc.Open(m.Data)
	if err != nil {
		return time.Time{}
	}
	hb := c.ToDriver.ConsumerHeartbeat()
	if hb <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(hb)
}

// killDriver SIGKILLs the local driver and returns when it may be
// restarted: once its last heartbeat is DriverTimeout old (and not before
// --down-for).
func (r *Runner) killDriver() (restartAt time.Time) {
	pid := r.driver.Process.Pid
	_ = r.driver.Process.Signal(syscall.SIGKILL)
	<-r.driverExited
	r.driver = nil
	killed := time.Now()
	restartAt = killed.Add(r.cfg.DownFor)
	if hb := driverHeartbeat(r.aeronDir); !hb.IsZero() {
		// A few ms past the timeout: the new driver compares in whole ms.
		restartAt = maxTime(restartAt, hb.Add(r.cfg.DriverTimeout+20*time.Millisecond))
	}
	fmt.Fprintf(r.con, "runner: SIGKILL mediadriver (pid %d); a new one on %s in %.1fs, when the dead one's heartbeat is %v old\n",
		pid, r.aeronDir, time.Until(restartAt).Seconds(), r.cfg.DriverTimeout)
	return restartAt
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// driverDied says why the local driver exited when the runner did not
// kill it ("" while it runs, or when none runs).
func (r *Runner) driverDied() string {
	if r.driver == nil {
		return ""
	}
	select {
	case <-r.driverExited:
	default:
		return ""
	}
	cmd := r.driver
	r.driver = nil
	return fmt.Sprintf("mediadriver (pid %d) stopped by itself (%v); see %s", cmd.Process.Pid, cmd.ProcessState, r.driverLog())
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

// driverArgs are the pods' flags for the driver they attach to.
func (r *Runner) driverArgs() []string {
	if r.aeronDir == "" {
		return nil
	}
	args := []string{"--aeron-dir", r.aeronDir, "--aeron-driver-timeout", r.cfg.DriverTimeout.String()}
	if r.ipc() {
		args = append(args, "--aeron-ipc")
	}
	return args
}

// ipc reports whether the pods talk over IPC through the local driver.
// Their IPC stream ids are made from their data ports, so start gives
// every incarnation a data port no other one of the run had: a killed
// pod's publications and subscriptions stay on the driver until its
// client liveness timeout, and must not meet a newcomer's.
func (r *Runner) ipc() bool { return r.cfg.MediaDriver == "local" && r.cfg.LocalTransport == "ipc" }

// driverKill kills the local driver as the run's next fault.
func (r *Runner) driverKill(rep *Report, t0 time.Time) {
	r.drvKilledAt = time.Now()
	r.drvRestartAt = r.killDriver()
	r.drvDown, r.drvMeasuring = true, false
	rep.Kills++
	rep.DriverKills++
	r.mu.Lock()
	r.drvKillIdx = len(r.kills)
	r.kills = append(r.kills, KillMark{Seconds: r.drvKilledAt.Sub(t0).Seconds(), NodeID: driverNode})
	r.mu.Unlock()
}

// restartDriver starts the killed driver's successor on its directory; a
// successor that still finds a live heartbeat there is tried again
// shortly. Once it runs, the subscribers' delivered total is watched
// (measureDriverKill).
func (r *Runner) restartDriver(rep *Report) error {
	err := r.startDriver()
	if errors.Is(err, errDriverActive) {
		r.log.Info("runner: the new media driver found the dead one's heartbeat still live; trying again")
		r.drvRestartAt = time.Now().Add(200 * time.Millisecond)
		return nil
	}
	r.drvDown = false
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return err
	}
	_, del, _, _ := r.totals()
	r.drvBaseline, r.drvMeasuring = del, true
	fmt.Fprintf(r.con, "runner: mediadriver back %.1fs after the kill; the pods reattach to it by themselves\n", time.Since(r.drvKilledAt).Seconds())
	return nil
}

// measureDriverKill records the time from the driver kill to the first
// scrape showing the subscribers delivering more than when the new driver
// started.
func (r *Runner) measureDriverKill(now time.Time) {
	if !r.drvMeasuring {
		return
	}
	if _, del, _, _ := r.totals(); del > r.drvBaseline {
		r.drvMeasuring = false
		d := now.Sub(r.drvKilledAt).Seconds()
		r.log.Info("runner: delivering again after the media driver kill", "seconds_since_kill", float64(int(d*1000))/1000)
		r.mu.Lock()
		r.drvToDelivery = append(r.drvToDelivery, d)
		if r.drvKillIdx < len(r.kills) {
			r.kills[r.drvKillIdx].DeliveringAfter = d
		}
		r.mu.Unlock()
	}
}
