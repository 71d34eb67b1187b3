package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
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
