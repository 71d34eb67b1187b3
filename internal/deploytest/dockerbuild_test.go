package deploytest

import (
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The image cannot be built without a Docker engine, but its build stage
// can be replayed: the build context (the repository minus .dockerignore) is
// copied to a temp dir and the Dockerfile's own `RUN ... go build` line runs
// there with sh, as the golang image would run it. The binaries must be
// static (distroless/static has no libc) and are the ones the namespace
// scenario then runs.

// dockerignore reads .dockerignore's patterns (the subset it uses: paths
// relative to the context root, globs, and a leading "**/").
func dockerignore(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") || strings.Contains(strings.TrimPrefix(line, "**/"), "**") {
			t.Fatalf(".dockerignore pattern %q is outside the subset this test understands", line)
		}
		pats = append(pats, line)
	}
	return pats
}

// ignored reports whether rel (slash-separated) or one of its parents
// matches a pattern, the way Docker applies .dockerignore.
func ignored(pats []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		for _, p := range pats {
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				if m, _ := path.Match(rest, parts[i-1]); m {
					return true
				}
				continue
			}
			if m, _ := path.Match(p, prefix); m {
				return true
			}
		}
	}
	return false
}

// dockerBuildLine returns the Dockerfile's RUN instruction that runs go build,
// with its line continuations joined and its RUN flags (--mount=...) dropped:
// the shell command the build stage runs.
func dockerBuildLine(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	for _, line := range strings.Split(joined, "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			return runFlagsRE.ReplaceAllString(strings.TrimPrefix(line, "RUN "), "")
		}
	}
	t.Fatal("Dockerfile has no RUN ... go build line")
	return ""
}

// runFlagsRE matches the flags before a RUN instruction's command.
var runFlagsRE = regexp.MustCompile(`^\s*(--[a-z]+=\S+\s+)*`)

// imageVersion is the VERSION build argument the tests build with; the
// binaries must report it with --version.
const imageVersion = "v0.0.0-deploytest"

var (
	imageOnce sync.Once
	imageDir  string
	imageErr  string
)

// imageBinaries replays the image's build stage once per test binary and
// returns its output directory ("out": publisher, subscriber, runner,
// datafs/data, tmpfs/tmp), which sits in a directory that is, as it stands,
// the build context of the Dockerfile's prebuilt target.
func imageBinaries(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		root := repoRoot(t)
		pats := dockerignore(t, root)
		dir, err := os.MkdirTemp("", "sfimage-")
		if err != nil {
			imageErr = err.Error()
			return
		}
		imageDir = dir
		ctx := filepath.Join(dir, "src")
		out := filepath.Join(dir, "context", "out")
		// The build context: every file git tracks or that is present,
		// minus .dockerignore.
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if rel == "." {
				return nil
			}
			if ignored(pats, filepath.ToSlash(rel)) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			dst := filepath.Join(ctx, rel)
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			imageErr = "copy build context: " + err.Error()
			return
		}
		// The build stage writes to /out: here, to the temp dir.
		script := strings.ReplaceAll(dockerBuildLine(t, root), "/out/", out+"/")
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = ctx
		cmd.Env = append(os.Environ(), "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH, "VERSION="+imageVersion)
		if b, err := cmd.CombinedOutput(); err != nil {
			imageErr = "the Dockerfile's build step failed in a copy of the build context: " + err.Error() + "\n" + script + "\n" + string(b)
		}
	})
	if imageErr != "" {
		t.Fatal(imageErr)
	}
	return filepath.Join(imageDir, "context", "out")
}

// TestDockerBuildStage replays the image's build stage and checks that it
// yields the three binaries, statically linked, and the data dir.
func TestDockerBuildStage(t *testing.T) {
	if !podsPresent(t) || !mainPresent(t, "runner") {
		t.Skip("skipped: cmd/publisher, cmd/subscriber and cmd/runner are not all in the repo yet")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux")
	}
	out := imageBinaries(t)
	for _, b := range []string{"publisher", "subscriber", "runner"} {
		f, err := elf.Open(filepath.Join(out, b))
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		libs, _ := f.ImportedLibraries()
		if f.Section(".interp") != nil || len(libs) > 0 {
			t.Errorf("%s is dynamically linked (%v); distroless/static has no libc", b, libs)
		}
		f.Close()
	}
	if fi, err := os.Stat(filepath.Join(out, "datafs", "data")); err != nil || !fi.IsDir() {
		t.Errorf("build stage did not create the data dir: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(out, "tmpfs", "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("build stage did not create a world-writable sticky tmp dir: %v %v", fi, err)
	}
	// The version the build argument set, as --version prints it.
	for _, b := range []string{"publisher", "subscriber", "runner"} {
		got, err := exec.Command(filepath.Join(out, b), "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(got), b+" "+imageVersion+" (go") {
			t.Errorf("%s --version: %q (%v), want %q", b, got, err, b+" "+imageVersion)
		}
	}
	// The image's default command: the runner's demo with the shipped pods.
	cmd := exec.Command(filepath.Join(out, "runner"), "--bin-dir", out, "--beats", "50", "--batch", "8", "--rate", "5ms", "--quiet")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("runner --bin-dir (the image's CMD) failed: %v\n%s", err, b)
	}
}

func TestDockerignoreMatcher(t *testing.T) {
	pats := []string{".git", "bin", "*.env", "**/testdata", "internal/deploytest"}
	for rel, want := range map[string]bool{
		".git/config": true, "bin/x": true, "local.env": true, "deploy/local.env": false,
		"transport/testdata/a.bin": true, "internal/deploytest/x.go": true, "internal/pod/pod.go": false,
		"cmd/publisher/main.go": false,
	} {
		if got := ignored(pats, rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}
