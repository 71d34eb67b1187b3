package deploytest

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// dfStage is one stage of the Dockerfile: its FROM line and its instructions
// (continuations joined, comments dropped), in order.
type dfStage struct {
	from, name string
	instrs     []dfInstr
}

type dfInstr struct{ cmd, args string }

// parseDockerfile splits the Dockerfile into stages. It understands the
// subset the file uses and fails on what it does not (heredocs, escape
// directives), so that a change it cannot read cannot pass unseen.
func parseDockerfile(t *testing.T, text string) []dfStage {
	t.Helper()
	var stages []dfStage
	var cur *dfStage
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			if strings.HasPrefix(strings.ToLower(line), "# escape=") {
				t.Fatalf("Dockerfile: escape directive is outside what this test reads")
			}
			continue
		}
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue
			}
			line = strings.TrimSuffix(line, "\\") + " " + next
		}
		if strings.Contains(line, "<<") {
			t.Fatalf("Dockerfile: heredoc is outside what this test reads: %s", line)
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		args = strings.Join(strings.Fields(args), " ")
		if cmd == "FROM" {
			f := strings.Fields(args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := dfStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			cur = &stages[len(stages)-1]
			continue
		}
		if cur == nil {
			if cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before the first FROM", cmd)
			}
			continue
		}
		cur.instrs = append(cur.instrs, dfInstr{cmd, args})
	}
	return stages
}

// kvPairs splits "K=V K2=V2" (ENV, LABEL), with double-quoted values.
var kvRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S*)`)

func kvPairs(s string) [][2]string {
	var out [][2]string
	for _, m := range kvRE.FindAllStringSubmatch(s, -1) {
		out = append(out, [2]string{m[1], strings.Trim(m[2], `"`)})
	}
	return out
}

// imageConfig is the part of `docker image inspect`'s Config that must be the
// same for the users' image and the test image.
type imageConfig struct {
	User         string
	WorkingDir   string
	Env          []string
	ExposedPorts map[string]struct{}
	Entrypoint   []string
	Cmd          []string
	Healthcheck  *healthConfig
}

// healthConfig is an image's HEALTHCHECK as the engine stores it.
type healthConfig struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

func (c imageConfig) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// wantConfig derives from the Dockerfile's runtime stage the config every
// image built from it has: the users' (distroless base) and the tests'
// (scratch base) alike, apart from what the base image brings. The runtime
// stage sets PATH and WORKDIR itself, so the only thing distroless adds is
// SSL_CERT_FILE (its CA bundle; the pods make no TLS connections).
func wantConfig(t *testing.T, st dfStage) imageConfig {
	t.Helper()
	var c imageConfig
	c.ExposedPorts = map[string]struct{}{}
	parseExec := func(s string) []string {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("Dockerfile: %q is not in exec (JSON) form: %v", s, err)
		}
		return v
	}
	for _, in := range st.instrs {
		switch in.cmd {
		case "USER":
			c.User = in.args
		case "WORKDIR":
			c.WorkingDir = in.args
		case "ENV":
			for _, kv := range kvPairs(in.args) {
				c.Env = append(c.Env, kv[0]+"="+kv[1])
			}
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				c.ExposedPorts[p] = struct{}{}
			}
		case "ENTRYPOINT":
			c.Entrypoint = parseExec(in.args)
		case "CMD":
			c.Cmd = parseExec(in.args)
		case "HEALTHCHECK":
			opts, rest, ok := strings.Cut(in.args, " CMD ")
			if !ok {
				t.Fatalf("Dockerfile: HEALTHCHECK without CMD: %s", in.args)
			}
			hc := &healthConfig{Test: append([]string{"CMD"}, parseExec(rest)...)}
			c.Healthcheck = hc
			for _, o := range strings.Fields(opts) {
				k, v, _ := strings.Cut(strings.TrimPrefix(o, "--"), "=")
				var err error
				switch k {
				case "interval":
					hc.Interval, err = time.ParseDuration(v)
				case "timeout":
					hc.Timeout, err = time.ParseDuration(v)
				case "start-period":
					hc.StartPeriod, err = time.ParseDuration(v)
				case "retries":
					_, err = fmt.Sscan(v, &hc.Retries)
				default:
					t.Fatalf("Dockerfile: HEALTHCHECK option %q is outside what this test reads (and Docker 20.10 knows)", o)
				}
				if err != nil {
					t.Fatalf("Dockerfile: HEALTHCHECK %s: %v", o, err)
				}
			}
		}
	}
	return c
}

// runtimeStage returns the Dockerfile's last stage, checking the shape that
// makes the users' image and the test image one definition: it is named
// runtime, built FROM ${BASE}, takes its files only from the binaries stage
// (FROM ${BINARIES}: the build stage by default, prebuilt for tests), and no
// other stage sets any runtime configuration.
func runtimeStage(t *testing.T) dfStage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(b))
	byName := map[string]dfStage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	rt := stages[len(stages)-1]
	if rt.name != "runtime" || rt.from != "${BASE}" {
		t.Fatalf("Dockerfile: last stage is FROM %s AS %s, want FROM ${BASE} AS runtime", rt.from, rt.name)
	}
	if byName["binaries"].from != "${BINARIES}" || byName["build"].from == "" || byName["prebuilt"].from != "scratch" {
		t.Fatalf("Dockerfile: want stages build, prebuilt (FROM scratch) and binaries (FROM ${BINARIES})")
	}
	for _, s := range stages[:len(stages)-1] {
		for _, in := range s.instrs {
			switch in.cmd {
			case "USER", "ENV", "EXPOSE", "HEALTHCHECK", "CMD", "ENTRYPOINT", "WORKDIR":
				if s.name == "build" && (in.cmd == "WORKDIR" || in.cmd == "ENV") {
					continue // the build stage's own
				}
				t.Errorf("Dockerfile: stage %s sets %s: runtime configuration belongs to the runtime stage only", s.name, in.cmd)
			}
		}
	}
	for _, in := range rt.instrs {
		switch {
		case in.cmd == "RUN":
			t.Errorf("Dockerfile: the runtime stage runs %q: distroless and scratch have no shell", in.args)
		case (in.cmd == "COPY" || in.cmd == "ADD") && !strings.Contains(in.args, "--from=binaries"):
			t.Errorf("Dockerfile: runtime stage %s %q does not take its files from the binaries stage", in.cmd, in.args)
		}
	}
	return rt
}

// TestDockerfileStages: the Dockerfile has the stage layout that makes the
// users' image and the test image one definition, and the build and prebuilt
// stages produce the same file layout.
func TestDockerfileStages(t *testing.T) {
	rt := runtimeStage(t)
	c := wantConfig(t, rt)
	if c.User != "65532:65532" {
		t.Errorf("runtime USER %q, want 65532:65532 (distroless nonroot)", c.User)
	}
	if c.Healthcheck == nil {
		t.Error("runtime stage has no HEALTHCHECK")
	}
	// The runtime stage copies /out/<x> from the binaries stage: every such
	// path must be made by the build stage's go build line and shipped by
	// the prebuilt context (imageBinaries lays it out from the same line).
	line := dockerBuildLine(t, repoRoot(t))
	for _, in := range rt.instrs {
		if in.cmd != "COPY" {
			continue
		}
		for _, f := range strings.Fields(in.args) {
			if p, ok := strings.CutPrefix(f, "/out/"); ok {
				name := strings.TrimSuffix(strings.SplitN(p, "/", 2)[0], "/")
				if !strings.Contains(line, "/out/"+name) && !strings.Contains(line, "./cmd/"+name) {
					t.Errorf("runtime stage copies /out/%s, which the build stage's go build line does not make", p)
				}
			}
		}
	}
}

// TestImageMatchesDockerfile builds the test image (runtime stage, scratch
// base, host-built binaries) on the engine and checks that its user, working
// dir, environment, exposed ports, entrypoint, command and healthcheck are
// exactly what the runtime stage declares, which the users' image shares;
// then that it runs: --version, and the default command (the runner's demo)
// as the non-root user with a read-only root file system would not allow.
func TestImageMatchesDockerfile(t *testing.T) {
	img := buildTestImage(t)
	want := wantConfig(t, runtimeStage(t))
	var got []struct {
		Config imageConfig
		Os     string
	}
	if err := json.Unmarshal([]byte(docker(t, "image", "inspect", img)), &got); err != nil || len(got) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	g := got[0].Config
	sort.Strings(g.Env)
	sort.Strings(want.Env)
	if g.String() != want.String() {
		t.Errorf("test image config differs from the Dockerfile's runtime stage:\n image      %s\n Dockerfile %s", g, want)
	}

	// The version baked in by the build argument, and the file system: the
	// data dir owned by the pods' user, a sticky world-writable /tmp.
	for _, b := range []string{"publisher", "subscriber", "runner"} {
		out := docker(t, "run", "--rm", "--network", "none", img, "/usr/local/bin/"+b, "--version")
		if !strings.HasPrefix(out, b+" "+imageVersion+" ") {
			t.Errorf("%s --version in the image: %q, want %s %s", b, out, b, imageVersion)
		}
	}
	// The default command: the runner's demo with the shipped pods, as 65532,
	// writing its work dir under /tmp.
	out, err := dockerErr("run", "--rm", "--network", "none", img, "/usr/local/bin/runner",
		"--bin-dir", "/usr/local/bin", "--beats", "20", "--batch", "8", "--rate", "5ms", "--quiet")
	if err != nil || !strings.Contains(out, "nothing lost, nothing duplicated") {
		t.Errorf("the runner's demo in the image: %v\n%s", err, out)
	}
	// The data dir: a pod writes its snapshot there as 65532.
	id := docker(t, "create", img)
	defer dockerErr("rm", "-f", id)
	tarOut, err := exportListing(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drwxr-xr-x 65532/65532 data/", "drwxrwxrwt 0/0 tmp/"} {
		if !slices.Contains(tarOut, want) {
			t.Errorf("image file system lacks %q; has %q", want, tarOut)
		}
	}
}

// exportListing lists a container's file system (`docker export`) as
// "MODE UID/GID NAME" lines for directories at the top level.
func exportListing(id string) ([]string, error) {
	cmd := exec.Command("docker", "export", id)
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir && strings.Count(strings.TrimSuffix(name, "/"), "/") == 0 {
			mode := "d" + h.FileInfo().Mode().Perm().String()[1:]
			if h.FileInfo().Mode()&os.ModeSticky != 0 {
				mode = mode[:9] + "t"
			}
			out = append(out, fmt.Sprintf("%s %d/%d %s", mode, h.Uid, h.Gid, name))
		}
	}
	return out, cmd.Wait()
}
