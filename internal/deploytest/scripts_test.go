package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// scripts lists the deployment scripts that must exist.
var scripts = []string{"replace-node.sh", "chaos.sh", "netns-cluster.sh"}

func scriptFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	for _, s := range scripts {
		fi, err := os.Stat(filepath.Join(root, "scripts", s))
		if err != nil {
			t.Errorf("scripts/%s: %v", s, err)
			continue
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("scripts/%s is not executable", s)
		}
	}
	files, err := filepath.Glob(filepath.Join(root, "scripts", "*.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts/*.sh")
	}
	return files
}

func TestScriptsBashSyntax(t *testing.T) {
	for _, f := range scriptFiles(t) {
		out, err := exec.Command("bash", "-n", f).CombinedOutput()
		if err != nil {
			t.Errorf("bash -n %s: %v\n%s", filepath.Base(f), err, out)
		}
	}
}

// shellcheckPath finds shellcheck, installing the Debian package when it is
// missing and this is root on a machine with apt-get (as .ci/run does).
func shellcheckPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("shellcheck"); err == nil {
		return p
	}
	why := "not root"
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err != nil {
			why = "no apt-get"
		} else {
			env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			install := exec.Command("apt-get", "install", "-y", "-qq", "shellcheck")
			install.Env = env
			if out, err := install.CombinedOutput(); err != nil {
				update := exec.Command("apt-get", "update", "-qq")
				update.Env = env
				_, _ = update.CombinedOutput()
				install = exec.Command("apt-get", "install", "-y", "-qq", "shellcheck")
				install.Env = env
				if out2, err := install.CombinedOutput(); err != nil {
					why = "apt-get install shellcheck failed: " + strings.TrimSpace(string(out)+string(out2))
				}
			}
			if p, err := exec.LookPath("shellcheck"); err == nil {
				return p
			}
		}
	}
	t.Skipf("shellcheck is not installed and could not be installed (%s); install the Debian package shellcheck to run this check", why)
	return ""
}

func TestScriptsShellcheck(t *testing.T) {
	sc := shellcheckPath(t)

	// The linter must be able to fail: a script with an unquoted expansion.
	bad := filepath.Join(t.TempDir(), "bad.sh")
	if err := os.WriteFile(bad, []byte("#!/usr/bin/env bash\nrm -rf $1/tmp\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sc, bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "SC2086") {
		t.Fatalf("shellcheck did not flag an unquoted expansion (err %v):\n%s", err, out)
	}

	files := scriptFiles(t)
	out, err := exec.Command(sc, append([]string{"-x"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	t.Logf("shellcheck clean: %d scripts", len(files))
}

// expoTally renders a subscriber's tally metrics for the values applied, the
// way client_golang writes them (labels sorted, shortest float form).
func expoTally(pub string, values []uint64) string {
	var count, fizz, buzz, fb, plain, sum, last, first uint64
	if len(values) > 0 {
		first = values[0]
	}
	for _, v := range values {
		count++
		last = max(last, v)
		switch {
		case v%15 == 0:
			fb++
		case v%3 == 0:
			fizz++
		case v%5 == 0:
			buzz++
		default:
			plain++
			sum += v
		}
	}
	f := func(v uint64) string { return strconv.FormatFloat(float64(v), 'g', -1, 64) }
	var b strings.Builder
	b.WriteString("# HELP steadfast_logger_values Logger count.\n# TYPE steadfast_logger_values gauge\n")
	for _, c := range []struct {
		cat string
		v   uint64
	}{{"buzz", buzz}, {"fizz", fizz}, {"fizzbuzz", fb}, {"value", plain}} {
		fmt.Fprintf(&b, "steadfast_logger_values{category=%q,publisher=%q} %s\n", c.cat, pub, f(c.v))
	}
	fmt.Fprintf(&b, "steadfast_logger_applied_values{publisher=%q} %s\n", pub, f(count))
	fmt.Fprintf(&b, "steadfast_logger_plain_values_summed{publisher=%q} %s\n", pub, f(sum))
	fmt.Fprintf(&b, "steadfast_logger_first_seq{publisher=%q} %s\n", pub, f(first))
	fmt.Fprintf(&b, "steadfast_logger_last_seq{publisher=%q} %s\n", pub, f(last))
	for _, n := range []string{"dead_lettered", "lost_values", "out_of_order"} {
		fmt.Fprintf(&b, "steadfast_logger_%s{publisher=%q} 0\n", n, pub)
	}
	// Another publisher's perfect stream must not mask a broken one.
	fmt.Fprintf(&b, "steadfast_logger_applied_values{publisher=\"other\"} 15\nsteadfast_logger_last_seq{publisher=\"other\"} 15\n")
	return b.String()
}

// TestLibTallyCheck runs scripts/lib.sh's tally_check (used by chaos.sh and
// netns-cluster.sh) on metrics of complete and broken streams.
func TestLibTallyCheck(t *testing.T) {
	lib := filepath.Join(repoRoot(t), "scripts", "lib.sh")
	const n = 250_000
	seq := func(from, to uint64) []uint64 {
		var s []uint64
		for v := from; v <= to; v++ {
			s = append(s, v)
		}
		return s
	}
	cat := func(parts ...[]uint64) []uint64 {
		var s []uint64
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	cases := []struct {
		name   string
		values []uint64
		ok     bool
		want   string
	}{
		{"complete", seq(1, n), true, fmt.Sprintf("values 1..%d each applied exactly once", n)},
		{"lost plain value", cat(seq(1, 40), seq(42, n)), false, "lost 1"},
		{"lost fizzbuzz", cat(seq(1, 44), seq(46, n)), false, "lost 1"},
		{"duplicated", cat(seq(1, n), []uint64{77}), false, "duplicated 1"},
		{"one lost, one duplicated", cat(seq(1, 40), []uint64{43}, seq(42, n)), false, "plain sum"},
		{"started late", seq(2, n), false, "first seq"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("bash", "-c", `. "$1" && tally_check publisher-1`, "bash", lib)
			cmd.Stdin = strings.NewReader(expoTally("publisher-1", tc.values))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok || !strings.Contains(string(out), tc.want) {
				t.Errorf("err %v, output %q; want ok=%v and %q", err, out, tc.ok, tc.want)
			}
		})
	}
	cmd := exec.Command("bash", "-c", `. "$1" && tally_check publisher-9`, "bash", lib)
	cmd.Stdin = strings.NewReader(expoTally("publisher-1", seq(1, 10)))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("tally_check passed for a publisher with no tally: %s", out)
	}
}
