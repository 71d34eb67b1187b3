package pod

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestCrashExitStatus: with CrashOnPanic (as the pod binaries run), a panic
// in any goroutine ends the process with SIGABRT, status ExitCrash in a
// shell, not Go's 2, which is the pods' usage status. The panic and the
// stacks are on stderr. The crashing process is this test binary run again.
func TestCrashExitStatus(t *testing.T) {
	if os.Getenv("POD_TEST_CRASH") == "1" {
		// No core file, whatever the machine's limit.
		_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
		CrashOnPanic()
		go func() {
			var m map[string]int
			m["boom"]++ // a runtime panic: assignment to entry in nil map
		}()
		select {} // the crash ends the process
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashExitStatus$", "-test.count=1")
	cmd.Env = append(os.Environ(), "POD_TEST_CRASH=1", "GOTRACEBACK=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("crashing child: %v", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Fatalf("child ended with %v (exit code %d), want SIGABRT; stderr:\n%s", err, ee.ExitCode(), stderr.String())
	}
	if 128+int(ws.Signal()) != ExitCrash || ExitCrash == ExitUsage {
		t.Fatalf("ExitCrash %d does not match SIGABRT", ExitCrash)
	}
	for _, want := range []string{"assignment to entry in nil map", "goroutine "} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
