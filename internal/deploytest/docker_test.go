package deploytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this file and compose_scenario_test.go run on a real Docker
// engine. No image can be pulled where they run, so the image under test is
// the Dockerfile's runtime stage built FROM scratch from host-built static
// binaries (see the Dockerfile's header and buildTestImage).

// inCI reports whether this is a CI run (.ci/run sets CI=true and starts an
// engine): there, a missing engine fails the tests instead of skipping them.
func inCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

var (
	engineOnce sync.Once
	engineErr  error
	engineVer  string
)

// requireEngine skips the test, saying why, when no Docker engine answers
// (except in CI, where that fails it), and returns the engine's version.
func requireEngine(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the image is linux")
	}
	engineOnce.Do(func() {
		if _, err := exec.LookPath("docker"); err != nil {
			engineErr = errors.New("no docker client on PATH (Debian package docker.io)")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
		if err != nil {
			engineErr = fmt.Errorf("no Docker engine answers (`docker version`: %v: %s); start dockerd (as .ci/run does) to run these tests", err, strings.TrimSpace(string(out)))
			return
		}
		engineVer = strings.TrimSpace(string(out))
	})
	if engineErr != nil {
		if inCI() {
			t.Fatalf("CI=true but %v", engineErr)
		}
		t.Skipf("skipped: %v", engineErr)
	}
	return engineVer
}

// docker runs the docker client with args and returns its trimmed stdout;
// a failure fails the test with stderr.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerErr(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// dockerErr runs the docker client with args (2 minutes at most).
func dockerErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// builder returns the command prefix that builds with BuildKit here (the
// Dockerfile needs it: cache mounts, $BUILDPLATFORM): `docker buildx build
// --load` when the buildx plugin is installed, else a docker client older
// than 23 (Debian's docker.io) with DOCKER_BUILDKIT=1, which builds with the
// engine's own BuildKit. Newer clients without buildx refuse BuildKit.
func builder() (argv []string, env []string, err error) {
	if _, err := dockerErr("buildx", "version"); err == nil {
		return []string{"docker", "buildx", "build", "--load"}, nil, nil
	}
	var tried []string
	seen := map[string]bool{}
	for _, c := range []string{"docker", "/usr/bin/docker"} {
		p, err := exec.LookPath(c)
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		out, err := exec.Command(p, "version", "--format", "{{.Client.Version}}").Output()
		v := strings.TrimSpace(string(out))
		if v == "" {
			tried = append(tried, fmt.Sprintf("%s: no client version (%v)", p, err))
			continue
		}
		major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
		if major > 0 && major < 23 {
			return []string{p, "build"}, []string{"DOCKER_BUILDKIT=1"}, nil
		}
		tried = append(tried, fmt.Sprintf("%s: client %s needs the buildx plugin for BuildKit", p, v))
	}
	return nil, nil, fmt.Errorf("no BuildKit builder: no `docker buildx`, and %s; install Debian's docker.io (its 20.10 client builds with DOCKER_BUILDKIT=1) or the buildx plugin", strings.Join(tried, "; "))
}

var (
	testImageOnce sync.Once
	testImage     string
	testImageErr  string
)

// buildTestImage builds, once per test binary, the image the deployment
// tests run: the Dockerfile's runtime stage with --build-arg BINARIES=prebuilt
// --build-arg BASE=scratch, from the binaries the Dockerfile's own go build
// line produced on the host (CGO off, static; see imageBinaries). It returns
// the image's tag, unique to this test binary; TestMain removes it. No image
// is pulled. Skips (fails in CI) when no engine answers.
func buildTestImage(t *testing.T) string {
	t.Helper()
	requireEngine(t)
	if !podsPresent(t) || !mainPresent(t, "runner") {
		t.Skip("skipped: cmd/publisher, cmd/subscriber and cmd/runner are not all in the repo yet")
	}
	testImageOnce.Do(func() {
		out := imageBinaries(t)
		argv, env, err := builder()
		if err != nil {
			testImageErr = err.Error()
			return
		}
		var rnd [4]byte
		_, _ = rand.Read(rnd[:])
		tag := "steadfast-deploytest:" + hex.EncodeToString(rnd[:])
		start := time.Now()
		args := append(argv[1:],
			"--quiet",
			"--file", filepath.Join(repoRoot(t), "Dockerfile"),
			"--build-arg", "BINARIES=prebuilt",
			"--build-arg", "BASE=scratch",
			"--build-arg", "VERSION="+imageVersion,
			"--label", "steadfast.deploytest=1",
			"--tag", tag,
			filepath.Dir(out))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], args...)
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			testImageErr = fmt.Sprintf("%s %s: %v\n%s", argv[0], strings.Join(args, " "), err, b)
			return
		}
		testImage = tag
		t.Logf("built test image %s in %v (%s)", tag, time.Since(start).Round(time.Millisecond), strings.Join(append(env, argv...), " "))
	})
	if testImageErr != "" {
		t.Fatal(testImageErr)
	}
	return testImage
}

// removeTestImage removes the image buildTestImage built, if any.
func removeTestImage() {
	if testImage != "" {
		_, _ = dockerErr("image", "rm", "--force", testImage)
	}
}

// engineLockFile is shared by every steadfast test package that needs the
// engine's networking steady or changes it (the compose scenario here,
// internal/orchtest's swarm test: `docker swarm init/leave` while a compose
// stack runs broke the stack network's DNS on engine 20.10). `go test ./...`
// runs packages in parallel; the lock makes those tests take turns.
func engineLockFile() string {
	return filepath.Join(os.TempDir(), "steadfast-docker-engine.lock")
}

// lockEngine takes the engine lock (blocking) until the test ends.
func lockEngine(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(engineLockFile(), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("engine lock: %v", err)
	}
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("engine lock: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %v for the engine lock (%s)", d.Round(time.Second), engineLockFile())
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
