package runner

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// repoRoot finds the directory holding go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// podFlag is one flag of a pod, as its --help describes it.
type podFlag struct {
	name, env, def, usage string
	roles                 []string
}

var (
	helpFlagRE = regexp.MustCompile(`^  --([a-z0-9-]+) \[([A-Z0-9_]+)\]$`)
	helpDefRE  = regexp.MustCompile(` \(default ([^:)][^)]*)\)$`)
)

// podFlags reads both pods' --help (generated from their flag definitions)
// into one list, in the publisher's order then the subscriber's own.
func podFlags(t *testing.T) []*podFlag {
	t.Helper()
	var out []*podFlag
	byName := map[string]*podFlag{}
	for _, role := range []pod.Role{pod.Publisher, pod.Subscriber} {
		var help bytes.Buffer
		if _, err := pod.ParseFlags(role, []string{"--help"}, func(string) string { return "" }, &help); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s --help: %v", role, err)
		}
		lines := strings.Split(help.String(), "\n")
		for i, l := range lines {
			m := helpFlagRE.FindStringSubmatch(l)
			if m == nil || i+1 >= len(lines) {
				continue
			}
			usage := strings.TrimSpace(lines[i+1])
			def := ""
			if d := helpDefRE.FindStringSubmatch(usage); d != nil {
				def = d[1]
				usage = strings.TrimSuffix(usage, d[0])
			}
			f := byName[m[1]]
			if f == nil {
				f = &podFlag{name: m[1], env: m[2], def: def, usage: usage}
				byName[m[1]] = f
				out = append(out, f)
			}
			if f.env != m[2] || f.def != def {
				t.Fatalf("--%s differs between the pods: %s/%q and %s/%q", m[1], f.env, f.def, m[2], def)
			}
			f.roles = append(f.roles, role.String())
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d flags found in the pods' --help: has its format changed?", len(out))
	}
	return out
}

// envTable renders the README's table of environment variables.
func envTable(flags []*podFlag) string {
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString("| variable | flag | pods | default | meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range flags {
		pods := "both"
		if len(f.roles) == 1 {
			pods = f.roles[0]
		}
		def := "—"
		if f.def != "" {
			def = "`" + f.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s | %s |\n", f.env, f.name, pods, def, cell(f.usage))
	}
	return b.String()
}

const (
	envBegin = "<!-- env-table: generated from the pods' flag definitions; UPDATE_README=1 go test -run TestREADMEEnvTable ./internal/runner rewrites it -->\n"
	envEnd   = "<!-- end of env-table -->\n"
)

// TestREADMEEnvTable: the README lists every environment variable of the
// pods, with its flag, default and meaning, exactly as their --help has
// them (so the two cannot drift apart). UPDATE_README=1 rewrites the table.
func TestREADMEEnvTable(t *testing.T) {
	path := filepath.Join(repoRoot(t), "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, envBegin), strings.Index(readme, envEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no env-table markers (%q ... %q)", envBegin, envEnd)
	}
	want := envTable(podFlags(t))
	got := readme[i+len(envBegin) : j]
	if got == want {
		return
	}
	if os.Getenv("UPDATE_README") != "" {
		if err := os.WriteFile(path, []byte(readme[:i+len(envBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md env table rewritten")
		return
	}
	t.Fatalf("README.md's env table is out of date; run UPDATE_README=1 go test -run TestREADMEEnvTable ./internal/runner\n got:\n%s\nwant:\n%s", got, want)
}

// TestREADMETwoPodsByHand: the "two pods by hand" commands are valid pod
// command lines, and the two pods share no port and no data dir (they
// run on one host).
func TestREADMETwoPodsByHand(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- two-pods -->\\s*```sh\\n(.*?)```").FindSubmatch(b)
	if block == nil {
		t.Fatal("README.md has no <!-- two-pods --> sh block")
	}
	// Join continued lines, then take the pod command lines.
	text := strings.ReplaceAll(string(block[1]), "\\\n", " ")
	used := map[string]string{}
	pods := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "&"))
		if len(f) == 0 || (f[0] != "bin/publisher" && f[0] != "bin/subscriber") {
			continue
		}
		pods++
		role := pod.Publisher
		if f[0] == "bin/subscriber" {
			role = pod.Subscriber
		}
		args := slices.Clone(f[1:])
		for k, a := range args {
			if a == `"$KEY"` {
				args[k] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" // a valid key in place of the shell variable
			}
		}
		cfg, err := pod.ParseFlags(role, args, func(string) string { return "" }, nil)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if len(cfg.ClusterKey) == 0 {
			t.Errorf("%s: runs without a cluster key", f[0])
		}
		for what, v := range map[string]string{"gossip": portOf(cfg.Bind), "data": portOf(cfg.DataEndpoint), "metrics": portOf(cfg.MetricsAddr), "dir": cfg.DataDir} {
			key := v
			if what != "dir" {
				key = "port " + v
			}
			if prev, ok := used[key]; ok {
				t.Errorf("%s %s of %s is already the %s", what, v, f[0], prev)
			}
			used[key] = f[0] + " " + what
		}
	}
	if pods != 2 {
		t.Fatalf("%d pod command lines in the two-pods block, want 2", pods)
	}
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}

// TestNoPathOutsideTheRepository: no Markdown file or Go comment of the
// repository points to a path outside it (everything a reader needs is in
// the repository).
func TestNoPathOutsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	outside := regexp.MustCompile(`\.\./shared\b|/work/shared\b|\.\./\.\./\.\./`)
	link := regexp.MustCompile(`\]\(([^)#\s]+)`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != "." && (strings.HasPrefix(n, ".") && path != root || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".md" && ext != ".go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if loc := outside.FindIndex(b); loc != nil && rel != filepath.Join("internal", "runner", "readme_test.go") {
			t.Errorf("%s names a path outside the repository: %q", rel, b[loc[0]:loc[1]])
		}
		if ext == ".md" {
			for _, m := range link.FindAllSubmatch(b, -1) {
				target := string(m[1])
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				abs := filepath.Clean(filepath.Join(filepath.Dir(path), target))
				if r, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s links outside the repository: %s", rel, target)
				} else if _, err := os.Stat(abs); err != nil {
					t.Errorf("%s links to a missing file: %s", rel, target)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestREADMEExitStatuses: every paragraph of the README that lists the
// pods' exit statuses lists all of them (one said fenced pods exit 1 after
// ExitFenced became 3).
func TestREADMEExitStatuses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{"ok": pod.ExitOK, "failure": pod.ExitFailure, "usage": pod.ExitUsage,
		"fenced": pod.ExitFenced, "address in use": pod.ExitAddrInUse, "crash": pod.ExitCrash}
	n := 0
	for _, para := range strings.Split(string(b), "\n\n") {
		if !strings.Contains(strings.ToLower(para), "exit statuses") {
			continue
		}
		n++
		flat := strings.Join(strings.Fields(para), " ")
		for what, code := range codes {
			if !regexp.MustCompile(`(^|[ :,(])` + fmt.Sprint(code) + ` [a-z]`).MatchString(flat) {
				t.Errorf("README paragraph on exit statuses does not give %d (%s):\n%s", code, what, flat)
			}
		}
		if !strings.Contains(flat, fmt.Sprintf("%d fenced", pod.ExitFenced)) {
			t.Errorf("README paragraph on exit statuses does not say fenced is %d:\n%s", pod.ExitFenced, flat)
		}
	}
	if n < 2 {
		t.Fatalf("%d README paragraphs on the pods' exit statuses, want 2 (Observing a pod, Security)", n)
	}
}
