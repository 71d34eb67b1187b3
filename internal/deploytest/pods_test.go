package deploytest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

var helpVarRE = regexp.MustCompile(`\[([A-Z][A-Z0-9_]*)\]`)

// TestComposeEnvMatchesPodFlags runs the real pods' --help and checks that
// every variable docker-compose.yml sets for a pod is one that pod reads.
func TestComposeEnvMatchesPodFlags(t *testing.T) {
	bin := podBinaries(t)
	p, err := loadProject(repoRoot(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]map[string]bool{}
	for _, role := range []string{"publisher", "subscriber"} {
		out, _ := exec.Command(filepath.Join(bin, role), "--help").CombinedOutput()
		vars[role] = map[string]bool{}
		for _, m := range helpVarRE.FindAllStringSubmatch(string(out), -1) {
			vars[role][m[1]] = true
		}
		if !vars[role]["NODE_ID"] {
			t.Fatalf("%s --help lists no [NODE_ID]; output:\n%s", role, out)
		}
	}
	for name, role := range podRoles {
		for k := range p.Services[name].Environment {
			if !vars[role][k] {
				t.Errorf("%s sets %s, which %s --help does not list", name, k, role)
			}
		}
	}
}

// TestPodHealthcheckCommand runs the exact healthcheck command of the
// Dockerfile and docker-compose.yml with the real binaries, against a
// /healthz that answers 200 and then one that answers 503.
func TestPodHealthcheckCommand(t *testing.T) {
	bin := podBinaries(t)
	var status atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	srv.Start()
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"publisher", "subscriber"} {
		run := func() error {
			cmd := exec.Command(filepath.Join(bin, role), "--healthcheck")
			// As in the container: only METRICS_ADDR tells it where to look.
			cmd.Env = []string{"METRICS_ADDR=:" + port}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Logf("%s --healthcheck: %v %s", role, err, strings.TrimSpace(string(out)))
			}
			return err
		}
		status.Store(http.StatusOK)
		if err := run(); err != nil {
			t.Errorf("%s --healthcheck failed against a healthy /healthz: %v", role, err)
		}
		status.Store(http.StatusServiceUnavailable)
		if err := run(); err == nil {
			t.Errorf("%s --healthcheck passed against a /healthz answering 503", role)
		}
	}
}
