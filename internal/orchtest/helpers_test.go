package orchtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
)

// repoRoot returns the module root (two levels above this package).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repo root not found at %s: %v", root, err)
	}
	return root
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds, once per test binary, static (CGO off) linux binaries of
// the pods and of the probe the swarm test runs inside their containers,
// and returns their directory.
func binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "orchtest-bin-"); binErr != nil {
			return
		}
		cmd := exec.Command(goTool(), "build", "-o", binDir+string(os.PathSeparator),
			"./cmd/publisher", "./cmd/subscriber", "./internal/deploytest/sfprobe")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

var helpVarRE = regexp.MustCompile(`\[([A-Z][A-Z0-9_]*)\]`)

var (
	helpOnce sync.Once
	helpVars map[string]map[string]bool
	helpErr  error
)

// podEnvVars returns, per role, the environment variables the real pod
// binary lists in its --help.
func podEnvVars(t testing.TB) map[string]map[string]bool {
	t.Helper()
	dir := binaries(t)
	helpOnce.Do(func() {
		helpVars = map[string]map[string]bool{}
		for _, role := range []string{"publisher", "subscriber"} {
			out, err := exec.Command(filepath.Join(dir, role), "--help").CombinedOutput()
			if err != nil {
				helpErr = fmt.Errorf("%s --help: %v\n%s", role, err, out)
				return
			}
			helpVars[role] = map[string]bool{}
			for _, m := range helpVarRE.FindAllStringSubmatch(string(out), -1) {
				helpVars[role][m[1]] = true
			}
			if !helpVars[role]["NODE_ID"] {
				helpErr = fmt.Errorf("%s --help lists no [NODE_ID]:\n%s", role, out)
				return
			}
		}
	})
	if helpErr != nil {
		t.Fatal(helpErr)
	}
	return helpVars
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if keyFileDir != "" {
		os.RemoveAll(keyFileDir)
	}
	os.Exit(code)
}
