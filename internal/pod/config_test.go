package pod

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlagsDefaultsAndEnv(t *testing.T) {
	c, err := ParseFlags(Publisher, nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bind != "0.0.0.0:7946" || c.DataEndpoint != "0.0.0.0:40123" || c.MetricsAddr != "127.0.0.1:9090" || c.Batch != 64 {
		t.Fatalf("defaults: %+v", c)
	}
	e := env(map[string]string{
		"NODE_ID": "pub-1", "DATA_DIR": "/tmp/x", "JOIN": "a:1, b:2,", "BIND": "127.0.0.1:7000",
		"DATA_ENDPOINT": "127.0.0.1:40000", "METRICS_ADDR": "127.0.0.1:9999", "LOG_LEVEL": "debug",
		"RATE": "5ms", "BEATS": "7", "BATCH": "3", "OUTBOX": "100", "CLUSTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZg==",
	})
	c, err = ParseFlags(Publisher, []string{"--beats", "9"}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != "pub-1" || c.DataDir != "/tmp/x" || len(c.Join) != 2 || c.Join[1] != "b:2" ||
		c.Bind != "127.0.0.1:7000" || c.LogLevel != slog.LevelDebug || c.Rate != 5*time.Millisecond ||
		c.Beats != 9 || c.Batch != 3 || c.OutboxCapacity != 100 || len(c.ClusterKey) != 16 {
		t.Fatalf("env + flag: %+v", c)
	}
	s, err := ParseFlags(Subscriber, []string{"--panic-every=100", "--showstopper", "42", "--exit-when-done=false"}, env(nil), nil)
	if err != nil || s.PanicEvery != 100 || s.Showstopper != 42 || s.ExitWhenDone {
		t.Fatalf("subscriber: %+v %v", s, err)
	}
}

func TestParseFlagsBadValues(t *testing.T) {
	bad := []struct {
		role Role
		args []string
		env  map[string]string
		want string
	}{
		{Publisher, []string{"--rate", "fast"}, nil, "rate"},
		{Publisher, []string{"--rate", "-1s"}, nil, "rate"},
		{Publisher, []string{"--batch", "0"}, nil, "batch"},
		{Publisher, []string{"--outbox", "10", "--batch", "64"}, nil, "outbox"},
		{Publisher, []string{"--panic-every", "3"}, nil, "panic-every"},
		{Subscriber, []string{"--rate", "1s"}, nil, "rate"},
		{Subscriber, []string{"--node-id", "a b"}, nil, "node-id"},
		{Subscriber, []string{"--bind", "nohost"}, nil, "bind"},
		{Subscriber, []string{"--join", "x:1,y"}, nil, "join"},
		{Subscriber, []string{"--cluster-key", "short"}, nil, "cluster-key"},
		{Subscriber, []string{"--log-level", "loud"}, nil, "log-level"},
		{Subscriber, []string{"extra"}, nil, "extra"},
		{Subscriber, nil, map[string]string{"DATA_ENDPOINT": "x"}, "DATA_ENDPOINT"},
		{Subscriber, nil, map[string]string{"PANIC_EVERY": "-3"}, "PANIC_EVERY"},
		{Subscriber, nil, map[string]string{"CLUSTER_KEY": "!!!"}, "CLUSTER_KEY"},
	}
	for _, b := range bad {
		_, err := ParseFlags(b.role, b.args, env(b.env), nil)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%v %v: err %v, want ErrUsage", b.args, b.env, err)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, b.want) {
			t.Errorf("%v %v: message %q should be one line naming %q", b.args, b.env, msg, b.want)
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	for _, role := range []Role{Publisher, Subscriber} {
		var out bytes.Buffer
		_, err := ParseFlags(role, []string{"--help"}, env(nil), &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("help: %v", err)
		}
		for _, want := range []string{"--node-id [NODE_ID]", "--data-dir [DATA_DIR]", "--join [JOIN]",
			"--cluster-key [CLUSTER_KEY]", "--bind [BIND]", "--advertise [ADVERTISE]",
			"--data-endpoint [DATA_ENDPOINT]", "--metrics-addr [METRICS_ADDR]", "--log-level [LOG_LEVEL]", "healthcheck"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v help lacks %q", role, want)
			}
		}
		wantRole := map[Role]string{Publisher: "--rate [RATE]", Subscriber: "--panic-every [PANIC_EVERY]"}[role]
		if !strings.Contains(out.String(), wantRole) {
			t.Errorf("%v help lacks %q", role, wantRole)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	for _, a := range [][]string{{"healthcheck"}, {"--healthcheck"}, {"healthcheck", "http://x/healthz"}, {"--healthcheck=http://x"}} {
		if _, ok := IsHealthcheck(a); !ok {
			t.Errorf("%v not recognised", a)
		}
	}
	if _, ok := IsHealthcheck([]string{"--rate", "1s"}); ok {
		t.Error("flags taken for a healthcheck")
	}
	if u, _ := HealthURL(":9090"); u != "http://127.0.0.1:9090/healthz" {
		t.Errorf("HealthURL = %s", u)
	}
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	var out bytes.Buffer
	if rc := Healthcheck(srv.URL+"/healthz", env(nil), 5*time.Second, &out); rc != 0 {
		t.Fatalf("healthy: rc %d %s", rc, out.String())
	}
	status = http.StatusServiceUnavailable
	if rc := Healthcheck(srv.URL+"/healthz", env(nil), 5*time.Second, &out); rc != 1 {
		t.Fatalf("unhealthy: rc %d", rc)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	if rc := Healthcheck("", env(map[string]string{"METRICS_ADDR": addr}), 5*time.Second, &out); rc != 1 {
		t.Fatalf("down: rc %d", rc)
	}
}

// TestNewValidatesConfig: a pod built as a library (New, not ParseFlags)
// refuses a Config that would divide by zero (Batch 0) or panic (Rate 0 in
// a ticker) with an error wrapping ErrConfig, before it touches anything.
func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		role Role
		mod  func(*Config)
	}{
		{"batch 0", Publisher, func(c *Config) { c.Batch = 0 }},
		{"rate 0", Publisher, func(c *Config) { c.Rate = 0 }},
		{"negative rate", Publisher, func(c *Config) { c.Rate = -time.Second }},
		{"outbox 0", Publisher, func(c *Config) { c.OutboxCapacity = 0 }},
		{"outbox below a batch", Publisher, func(c *Config) { c.OutboxCapacity, c.Batch = 10, 64 }},
		{"beats×batch overflow", Publisher, func(c *Config) { c.Beats, c.Batch = 1<<60, 1<<10 }},
		{"retention 0", Publisher, func(c *Config) { c.SubscriberRetention = 0 }},
		{"snapshot interval 0", Subscriber, func(c *Config) { c.SnapshotInterval = 0 }},
		{"min publishers 0", Subscriber, func(c *Config) { c.MinPublishers = 0 }},
		{"bad node id", Subscriber, func(c *Config) { c.NodeID = "../x" }},
		{"bad bind", Subscriber, func(c *Config) { c.Bind = "nohost" }},
		{"bad data endpoint", Publisher, func(c *Config) { c.DataEndpoint = "127.0.0.1:99999" }},
		{"empty data dir", Subscriber, func(c *Config) { c.DataDir = "" }},
		{"bad role", Role(9), func(*Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig(tc.role)
			c.DataDir = t.TempDir()
			c.Bind, c.DataEndpoint, c.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", ""
			c.Insecure = true
			tc.mod(&c)
			p, err := New(c, nil)
			if err == nil {
				p.Close()
				t.Fatalf("New accepted %+v", c)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	// The defaults are valid.
	for _, r := range []Role{Publisher, Subscriber} {
		c := DefaultConfig(r)
		c.ClusterKey = []byte("0123456789abcdef")
		if err := c.validate(); err != nil {
			t.Fatalf("%v defaults: %v", r, err)
		}
	}
}
