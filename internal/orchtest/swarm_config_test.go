package orchtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// stackSecretRef is a service's use of a swarm secret (long syntax).
type stackSecretRef struct {
	Source string  `json:"source"`
	Target string  `json:"target"`
	UID    string  `json:"uid"`
	GID    string  `json:"gid"`
	Mode   *uint32 `json:"mode"`
}

// stackConfig is the part of `docker stack config`'s rendering the checks
// read.
type stackConfig struct {
	Services map[string]struct {
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		Secrets     []stackSecretRef  `json:"secrets"`
	} `json:"services"`
	Secrets map[string]struct {
		External bool   `json:"external"`
		File     string `json:"file"`
		Name     string `json:"name"`
	} `json:"secrets"`
}

// renderStack renders deploy/swarm/stack.yml as `docker stack deploy` would
// read it (merges and interpolation, on the client: no engine needed).
func renderStack(t *testing.T) *stackConfig {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipped: no docker CLI on PATH to render the stack (docker stack config)")
	}
	out, err := docker(time.Minute, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")},
		"stack", "config", "-c", filepath.Join(repoRoot(t), "deploy", "swarm", "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c stackConfig
	if err := yaml.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("docker stack config: %v\n%s", err, out)
	}
	return &c
}

var userRE = regexp.MustCompile(`(?m)^USER\s+(\d+)(?::(\d+))?\s*$`)

// imageUser returns the uid and gid the image's pods run as (the
// Dockerfile's USER).
func imageUser(t *testing.T) (uid, gid string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := userRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		t.Fatal("the Dockerfile sets no numeric USER")
	}
	last := m[len(m)-1]
	uid, gid = string(last[1]), string(last[2])
	if gid == "" {
		gid = uid
	}
	return uid, gid
}

// checkStack checks every service of the rendered stack: the key comes
// from an external swarm secret mounted where CLUSTER_KEY_FILE points,
// with a mode the pod accepts and readable by the image's user; never from
// a variable; and the pod's own flag parser accepts the environment.
func checkStack(c *stackConfig, vars map[string]map[string]bool, uid, gid string) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for name, svc := range c.Services {
		if len(svc.Command) != 1 {
			add("service %s: command %q", name, svc.Command)
			continue
		}
		role := path.Base(svc.Command[0])
		env := map[string]string{}
		for k, v := range svc.Environment {
			if !vars[role][k] {
				add("service %s: %s is not a variable the %s reads (see --help)", name, k, role)
			}
			env[k] = strings.ReplaceAll(v, "{{.Task.Slot}}", "1")
		}
		if _, ok := env["CLUSTER_KEY"]; ok {
			add("service %s: CLUSTER_KEY set: the key would be part of the service spec (and the pod refuses both ways)", name)
		}
		if _, ok := env["INSECURE"]; ok {
			add("service %s: INSECURE set: the pods would run without authentication", name)
		}
		file, ok := env["CLUSTER_KEY_FILE"]
		if !ok {
			add("service %s: no CLUSTER_KEY_FILE: gossip would be unencrypted", name)
			continue
		}
		var ref *stackSecretRef
		for i, r := range svc.Secrets {
			target := r.Target
			if target == "" {
				target = r.Source
			}
			if !path.IsAbs(target) {
				target = "/run/secrets/" + target
			}
			if target == file {
				ref = &svc.Secrets[i]
			}
		}
		if ref == nil {
			add("service %s: CLUSTER_KEY_FILE %s is no secret the service mounts", name, file)
			continue
		}
		if sec, ok := c.Secrets[ref.Source]; !ok || !sec.External || sec.File != "" {
			add("service %s: secret %s is not an external secret: the key must be created out of band, no file of the repository holds it", name, ref.Source)
		}
		mode := uint32(0o444) // a swarm secret's default
		if ref.Mode != nil {
			mode = *ref.Mode
		}
		switch {
		case mode&0o027 != 0:
			add("service %s: key file mode %04o: the pod refuses a key file other users may read or its group write (mode 0400)", name, mode)
		case !(ref.UID == uid && mode&0o400 != 0 || ref.GID == gid && mode&0o040 != 0):
			add("service %s: key file (uid %q, gid %q, mode %04o) is unreadable for the image's user %s:%s", name, ref.UID, ref.GID, mode, uid, gid)
		}
		kf, err := sampleKeyFile()
		if err != nil {
			add("%v", err)
			continue
		}
		env["CLUSTER_KEY_FILE"] = kf
		r := pod.Subscriber
		if role == "publisher" {
			r = pod.Publisher
		}
		if _, err := pod.ParseFlags(r, nil, func(k string) string { return env[k] }, io.Discard); err != nil {
			add("service %s: the pod rejects its environment: %v", name, err)
		}
	}
	if len(c.Services) != 2 {
		add("%d services, want publisher and subscriber", len(c.Services))
	}
	return errs
}

// TestSwarmStackConfig renders deploy/swarm/stack.yml with `docker stack
// config` (the CLI only: no engine, no swarm) and checks how the pods get
// their key; then breaks the rendering one way at a time and requires each
// mistake to be reported. TestSwarmStack deploys the same file for real.
func TestSwarmStackConfig(t *testing.T) {
	vars := podEnvVars(t)
	uid, gid := imageUser(t)
	for _, err := range checkStack(renderStack(t), vars, uid, gid) {
		t.Error(err)
	}
	mode := func(m uint32) *uint32 { return &m }
	for _, tc := range []struct {
		name   string
		mutate func(c *stackConfig)
		want   string
	}{
		{"default mode", func(c *stackConfig) { c.Services["subscriber"].Secrets[0].Mode = nil }, "mode 0444"},
		{"group writable", func(c *stackConfig) { c.Services["publisher"].Secrets[0].Mode = mode(0o460) }, "mode 0460"},
		{"root's file", func(c *stackConfig) {
			c.Services["publisher"].Secrets[0].UID, c.Services["publisher"].Secrets[0].GID = "0", "0"
		}, "unreadable"},
		{"key as a variable", func(c *stackConfig) { c.Services["subscriber"].Environment["CLUSTER_KEY"] = keySample }, "part of the service spec"},
		{"no key file", func(c *stackConfig) { delete(c.Services["publisher"].Environment, "CLUSTER_KEY_FILE") }, "no CLUSTER_KEY_FILE"},
		{"key file elsewhere", func(c *stackConfig) { c.Services["subscriber"].Environment["CLUSTER_KEY_FILE"] = "/run/secrets/key" }, "no secret the service mounts"},
		{"secret from a file", func(c *stackConfig) {
			s := c.Secrets["cluster_key"]
			s.External, s.File = false, "./cluster-key"
			c.Secrets["cluster_key"] = s
		}, "not an external secret"},
		{"unknown variable", func(c *stackConfig) { c.Services["publisher"].Environment["SNAPSHOT_EVERY"] = "1s" }, "not a variable"},
		{"bad value", func(c *stackConfig) { c.Services["publisher"].Environment["RATE"] = "fast" }, "rejects its environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := renderStack(t)
			tc.mutate(c)
			errs := checkStack(c, vars, uid, gid)
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
			}
			t.Errorf("mutation %q not caught (want an error containing %q); got %v", tc.name, tc.want, errs)
		})
	}
}
