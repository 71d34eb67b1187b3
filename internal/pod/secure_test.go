package pod

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
)

// TestSecureByDefault: without a cluster key a pod refuses to start unless
// told --insecure (Main: exit 2 before opening anything; New: ErrNoKey), and
// its metrics listen on loopback unless configured.
func TestSecureByDefault(t *testing.T) {
	for _, role := range []Role{Publisher, Subscriber} {
		var out, errOut bytes.Buffer
		dir := t.TempDir()
		if rc := Main(role, []string{"--data-dir", dir}, env(nil), &out, &errOut); rc != 2 || !strings.Contains(errOut.String(), "--insecure") {
			t.Fatalf("%v without a key: exit %d, stderr %q", role, rc, errOut.String())
		}
		c := DefaultConfig(role)
		c.DataDir = dir
		if p, err := New(c, nil); !errors.Is(err, ErrNoKey) || !errors.Is(err, ErrConfig) {
			if p != nil {
				p.Close()
			}
			t.Fatalf("%v: New without a key: %v", role, err)
		}
		for _, args := range [][]string{{"--insecure"}, {"--insecure=true"}} {
			c, err := ParseFlags(role, args, env(nil), nil)
			if err != nil || !c.Insecure || c.checkKey() != nil {
				t.Fatalf("%v %v: %v %+v", role, args, err, c)
			}
		}
		c, err := ParseFlags(role, nil, env(map[string]string{"INSECURE": "true"}), nil)
		if err != nil || !c.Insecure {
			t.Fatalf("INSECURE=true: %v", err)
		}
		c, err = ParseFlags(role, nil, env(map[string]string{"CLUSTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZg=="}), nil)
		if err != nil || c.Insecure || c.checkKey() != nil {
			t.Fatalf("with a key: %v", err)
		}
		host, _, err := net.SplitHostPort(DefaultConfig(role).MetricsAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Fatalf("default metrics address %q is not loopback", DefaultConfig(role).MetricsAddr)
		}
		out.Reset()
		if rc := Main(role, []string{"--help"}, env(nil), &out, &errOut); rc != 0 || !strings.Contains(out.String(), "--insecure [INSECURE]") {
			t.Fatalf("--help does not explain --insecure:\n%s", out.String())
		}
	}
}
