package deploytest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// podRoles maps each pod service of docker-compose.yml to the binary it runs.
var podRoles = map[string]string{
	"publisher":    "publisher",
	"subscriber-1": "subscriber",
	"subscriber-2": "subscriber",
}

// observability lists the services of the "observability" profile.
var observability = []string{"prometheus", "grafana"}

// repoRoot returns the module root (two levels above this package).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repo root not found at %s: %v", root, err)
	}
	return root
}

// loadProject loads dir/docker-compose.yml with compose-go, the way
// `docker compose` does, with env as the only environment (the test's own
// environment must not leak in) and the given profiles enabled.
func loadProject(dir string, env []string, profiles ...string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func envValue(svc types.ServiceConfig, key string) string {
	if v, ok := svc.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func portOf(hostport string) (string, error) {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return port, nil
}

// checkCompose returns every problem it finds in a loaded project (loaded
// with the observability profile enabled).
func checkCompose(p *types.Project) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	bindPort := map[string]string{}
	for name := range podRoles {
		svc, ok := p.Services[name]
		if !ok {
			bad("pod service %q missing", name)
			continue
		}
		if p, err := portOf(envValue(svc, "BIND")); err == nil {
			bindPort[name] = p
		}
	}

	nodeIDs := map[string]string{}
	published := map[string]string{}
	for name, role := range podRoles {
		svc, ok := p.Services[name]
		if !ok {
			continue
		}
		if len(svc.Profiles) != 0 {
			bad("%s: a pod must run without a profile, has %v", name, svc.Profiles)
		}
		if svc.Image == "" || svc.Build == nil {
			bad("%s: needs image and build", name)
		} else if _, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile)); err != nil {
			bad("%s: Dockerfile: %v", name, err)
		}
		if want := []string{"/usr/local/bin/" + role}; !slices.Equal(svc.Command, want) {
			bad("%s: command %q, want %q", name, svc.Command, want)
		}
		if svc.Restart != types.RestartPolicyUnlessStopped {
			bad("%s: restart %q, want unless-stopped", name, svc.Restart)
		}
		if len(svc.Volumes) != 0 || len(svc.Tmpfs) != 0 {
			bad("%s: pods take no volumes (state comes back from peers), has %v %v", name, svc.Volumes, svc.Tmpfs)
		}
		if _, ok := svc.Networks["steadfast"]; !ok {
			bad("%s: not on the steadfast network", name)
		}

		// Environment.
		for _, k := range []string{"NODE_ID", "DATA_DIR", "JOIN", "CLUSTER_KEY", "BIND", "DATA_ENDPOINT", "METRICS_ADDR", "LOG_LEVEL"} {
			if envValue(svc, k) == "" {
				bad("%s: environment %s missing or empty", name, k)
			}
		}
		id := envValue(svc, "NODE_ID")
		if other, dup := nodeIDs[id]; dup && id != "" {
			bad("%s: NODE_ID %q already used by %s", name, id, other)
		}
		nodeIDs[id] = name
		if key, err := base64.StdEncoding.DecodeString(envValue(svc, "CLUSTER_KEY")); err != nil {
			bad("%s: CLUSTER_KEY is not base64: %v", name, err)
		} else if n := len(key); n != 16 && n != 24 && n != 32 {
			bad("%s: CLUSTER_KEY decodes to %d bytes, want 16, 24 or 32", name, n)
		}
		if lvl := envValue(svc, "LOG_LEVEL"); !slices.Contains([]string{"debug", "info", "warn", "error"}, lvl) {
			bad("%s: LOG_LEVEL %q", name, lvl)
		}
		if role == "publisher" {
			if _, err := time.ParseDuration(envValue(svc, "RATE")); err != nil {
				bad("%s: RATE: %v", name, err)
			}
			if n, err := strconv.Atoi(envValue(svc, "BATCH")); err != nil || n <= 0 {
				bad("%s: BATCH %q, want a positive integer", name, envValue(svc, "BATCH"))
			}
			if n, err := strconv.Atoi(envValue(svc, "BEATS")); err != nil || n < 0 {
				bad("%s: BEATS %q, want an integer >= 0", name, envValue(svc, "BEATS"))
			}
			subs := 0
			for _, r := range podRoles {
				if r == "subscriber" {
					subs++
				}
			}
			if got := envValue(svc, "MIN_SUBSCRIBERS"); got != strconv.Itoa(subs) {
				bad("%s: MIN_SUBSCRIBERS %q, want %d (every subscriber must get the whole stream)", name, got, subs)
			}
		} else if got := envValue(svc, "EXIT_WHEN_DONE"); got != "false" {
			bad("%s: EXIT_WHEN_DONE %q, want false (a container that exits is restarted)", name, got)
		}

		// Ports: what is exposed on the network, what is published on the host.
		expose := map[string]bool{}
		for _, e := range svc.Expose {
			expose[e] = true
		}
		need := map[string]string{}
		if bp, err := portOf(envValue(svc, "BIND")); err != nil {
			bad("%s: BIND: %v", name, err)
		} else {
			need[bp+"/tcp"], need[bp+"/udp"] = "BIND", "BIND"
		}
		if dp, err := portOf(envValue(svc, "DATA_ENDPOINT")); err != nil {
			bad("%s: DATA_ENDPOINT: %v", name, err)
		} else {
			need[dp+"/udp"] = "DATA_ENDPOINT"
		}
		mp, err := portOf(envValue(svc, "METRICS_ADDR"))
		if err != nil {
			bad("%s: METRICS_ADDR: %v", name, err)
		} else {
			need[mp+"/tcp"] = "METRICS_ADDR"
		}
		for port, what := range need {
			if !expose[port] {
				bad("%s: %s port %s not in expose %v", name, what, port, svc.Expose)
			}
		}
		metricsPublished := false
		for _, pc := range svc.Ports {
			if pc.HostIP != "127.0.0.1" {
				bad("%s: port %d published on %q, want 127.0.0.1 only", name, pc.Target, pc.HostIP)
			}
			if other, dup := published[pc.Published]; dup {
				bad("%s: host port %s already published by %s", name, pc.Published, other)
			}
			published[pc.Published] = name
			if strconv.Itoa(int(pc.Target)) == mp && pc.Published != "" && (pc.Protocol == "" || pc.Protocol == "tcp") {
				metricsPublished = true
			}
		}
		if !metricsPublished {
			bad("%s: metrics port %s not published on the host (scripts read /metrics there)", name, mp)
		}

		// Healthcheck: distroless has no shell or curl, the pod probes itself.
		hc := svc.HealthCheck
		switch {
		case hc == nil || hc.Disable:
			bad("%s: no healthcheck", name)
		default:
			if want := []string{"CMD", "/usr/local/bin/" + role, "--healthcheck"}; !slices.Equal(hc.Test, want) {
				bad("%s: healthcheck test %q, want %q", name, hc.Test, want)
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil || hc.StartPeriod == nil {
				bad("%s: healthcheck needs interval, timeout, retries and start_period", name)
			}
		}

		// JOIN: every other pod, by service name and its BIND port, so that
		// a replaced node always has live seeds.
		seeds := map[string]bool{}
		for _, seed := range strings.Split(envValue(svc, "JOIN"), ",") {
			host, port, err := net.SplitHostPort(strings.TrimSpace(seed))
			if err != nil {
				bad("%s: JOIN seed %q: %v", name, seed, err)
				continue
			}
			if _, ok := podRoles[host]; !ok {
				if _, isSvc := p.Services[host]; isSvc {
					bad("%s: JOIN seed %q names service %q, which is not a pod", name, seed, host)
				} else {
					bad("%s: JOIN seed %q names unknown service %q", name, seed, host)
				}
				continue
			}
			if host == name {
				bad("%s: JOIN seed %q is the service itself", name, seed)
			}
			if want := bindPort[host]; port != want {
				bad("%s: JOIN seed %q: %s binds memberlist on port %q", name, seed, host, want)
			}
			seeds[host] = true
		}
		for other := range podRoles {
			if other != name && !seeds[other] {
				bad("%s: JOIN does not list %s", name, other)
			}
		}
	}

	// Observability profile.
	for _, name := range observability {
		svc, ok := p.Services[name]
		if !ok {
			bad("observability service %q missing", name)
			continue
		}
		if !slices.Equal(svc.Profiles, []string{"observability"}) {
			bad("%s: profiles %v, want [observability]", name, svc.Profiles)
		}
		for _, pc := range svc.Ports {
			if pc.HostIP != "127.0.0.1" {
				bad("%s: port %d published on %q, want 127.0.0.1 only", name, pc.Target, pc.HostIP)
			}
		}
		for _, c := range svc.Configs {
			cfg, ok := p.Configs[c.Source]
			if !ok {
				bad("%s: config %q not defined", name, c.Source)
				continue
			}
			if _, err := os.Stat(cfg.File); err != nil {
				bad("%s: config %q: %v", name, c.Source, err)
			}
		}
	}
	if cfg, ok := p.Configs["prometheus"]; ok {
		errs = append(errs, checkPrometheus(p, cfg.File)...)
	} else {
		bad("config prometheus missing")
	}
	if g, ok := p.Services["grafana"]; ok {
		if d, ok := g.DependsOn["prometheus"]; !ok || d.Condition != types.ServiceConditionHealthy {
			bad("grafana must wait for prometheus to be healthy (depends_on: prometheus: condition: service_healthy)")
		}
	}
	if cfg, ok := p.Configs["grafana-dashboard-steadfast"]; ok {
		errs = append(errs, checkDashboard(cfg.File)...)
	} else {
		bad("config grafana-dashboard-steadfast missing")
	}
	return errs
}

var targetRE = regexp.MustCompile(`targets:\s*\[\s*"([^"]+)"\s*\]`)

// checkPrometheus checks that Prometheus scrapes every pod on its metrics port.
func checkPrometheus(p *types.Project, file string) []error {
	b, err := os.ReadFile(file)
	if err != nil {
		return []error{err}
	}
	targets := map[string]bool{}
	for _, m := range targetRE.FindAllStringSubmatch(string(b), -1) {
		targets[m[1]] = true
	}
	var errs []error
	for name := range podRoles {
		svc, ok := p.Services[name]
		if !ok {
			continue
		}
		mp, _ := portOf(envValue(svc, "METRICS_ADDR"))
		if want := name + ":" + mp; !targets[want] {
			errs = append(errs, fmt.Errorf("prometheus: no scrape target %q (has %v)", want, targets))
		}
	}
	return errs
}

// dashboardTopics are the subjects the provisioned dashboard must show: each
// needs a panel whose title contains the word and that has a query.
var dashboardTopics = []string{"throughput", "delivered", "restarts", "dead letters", "breaker", "outbox", "membership", "restore", "latency",
	"snapshot", "replicas", "transport"}

// dashboardQuantiles are the histograms the dashboard must show as p99
// (histogram_quantile over the rate of their buckets).
var dashboardQuantiles = []string{"steadfast_delivery_latency_seconds", "steadfast_snapshot_duration_seconds",
	"steadfast_replication_round_trip_seconds", "steadfast_restore_seconds"}

type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func flattenPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

var (
	// Counters, and a histogram's buckets (counters too).
	counterRE  = regexp.MustCompile(`\bsteadfast_[a-z0-9_]+_(total|bucket)\b`)
	rateOpenRE = regexp.MustCompile(`\b(rate|irate|increase)\(\s*$`)
)

func checkDashboard(file string) []error {
	b, err := os.ReadFile(file)
	if err != nil {
		return []error{err}
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return []error{fmt.Errorf("dashboard %s: %v", file, err)}
	}
	var errs []error
	if d.UID == "" || d.Title == "" {
		errs = append(errs, fmt.Errorf("dashboard: needs a uid and a title"))
	}
	panels := flattenPanels(d.Panels)
	for _, topic := range dashboardTopics {
		found := false
		for _, p := range panels {
			if strings.Contains(strings.ToLower(p.Title), topic) && len(p.Targets) > 0 && p.Targets[0].Expr != "" {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("dashboard: no panel with a query about %q", topic))
		}
	}
	// The duration histograms as quantiles: histogram_quantile over the
	// buckets' rate (a raw histogram only shows what accumulated since the
	// pod started).
	for _, h := range dashboardQuantiles {
		re := regexp.MustCompile(`histogram_quantile\(\s*0\.99\s*,.*\brate\(\s*` + h + `_bucket\b`)
		if !slices.ContainsFunc(panels, func(p panel) bool {
			return slices.ContainsFunc(p.Targets, func(tg struct {
				Expr string `json:"expr"`
			}) bool {
				return re.MatchString(tg.Expr)
			})
		}) {
			errs = append(errs, fmt.Errorf("dashboard: no p99 of %s (histogram_quantile over rate of its buckets)", h))
		}
	}
	for _, p := range panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("dashboard: panel %q has no query", p.Title))
		}
		// A counter only ever grows: plot its rate, not its raw value.
		for _, tg := range p.Targets {
			for _, c := range counterRE.FindAllStringIndex(tg.Expr, -1) {
				if !rateOpenRE.MatchString(tg.Expr[:c[0]]) {
					errs = append(errs, fmt.Errorf("dashboard: panel %q plots counter %s raw; use rate() or increase()", p.Title, tg.Expr[c[0]:c[1]]))
				}
			}
		}
	}
	return errs
}

func TestComposeFile(t *testing.T) {
	root := repoRoot(t)

	// Without a profile: exactly the three pods.
	p, err := loadProject(root, nil)
	if err != nil {
		t.Fatalf("compose-go could not load docker-compose.yml: %v", err)
	}
	got := p.ServiceNames()
	sort.Strings(got)
	if want := []string{"publisher", "subscriber-1", "subscriber-2"}; !slices.Equal(got, want) {
		t.Errorf("services without a profile: %v, want %v", got, want)
	}
	// No fixed project name: the checkout's directory names the project (so
	// two checkouts never share a stack), and COMPOSE_PROJECT_NAME wins.
	if want := strings.ToLower(filepath.Base(root)); p.Name != want {
		t.Errorf("project name %q, want the directory's %q (no fixed name: in docker-compose.yml)", p.Name, want)
	}
	if p, err := loadProject(root, []string{"COMPOSE_PROJECT_NAME=mine"}); err != nil || p.Name != "mine" {
		t.Errorf("COMPOSE_PROJECT_NAME=mine: project %v (%v)", p, err)
	}

	// With the observability profile: everything, and every check passes.
	p, err = loadProject(root, nil, "observability")
	if err != nil {
		t.Fatalf("load with profile observability: %v", err)
	}
	got = p.ServiceNames()
	sort.Strings(got)
	if want := []string{"grafana", "prometheus", "publisher", "subscriber-1", "subscriber-2"}; !slices.Equal(got, want) {
		t.Errorf("services with profile observability: %v, want %v", got, want)
	}
	for _, e := range checkCompose(p) {
		t.Error(e)
	}
	t.Logf("loaded %d services; pods %v; node ids %s, %s, %s", len(p.Services), got,
		envValue(p.Services["publisher"], "NODE_ID"), envValue(p.Services["subscriber-1"], "NODE_ID"), envValue(p.Services["subscriber-2"], "NODE_ID"))
}

// TestComposeEnvFile checks that CLUSTER_KEY comes from the env file, that
// STEADFAST_ENV_FILE points compose at another one, and that a missing env
// file is an error rather than a cluster without a key.
func TestComposeEnvFile(t *testing.T) {
	root := repoRoot(t)
	local, err := os.ReadFile(filepath.Join(root, "deploy", "local.env"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CLUSTER_KEY=(\S+)$`).FindSubmatch(local)
	if m == nil {
		t.Fatal("deploy/local.env has no CLUSTER_KEY line")
	}
	p, err := loadProject(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name := range podRoles {
		if got := envValue(p.Services[name], "CLUSTER_KEY"); got != string(m[1]) {
			t.Errorf("%s: CLUSTER_KEY %q, want the default from deploy/local.env %q", name, got, m[1])
		}
	}

	own := filepath.Join(t.TempDir(), "my.env")
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	if err := os.WriteFile(own, []byte("CLUSTER_KEY="+key+"\nLOG_LEVEL=debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = loadProject(root, []string{"STEADFAST_ENV_FILE=" + own, "BEATS=500", "PUBLISHER_METRICS_PORT=19091"})
	if err != nil {
		t.Fatal(err)
	}
	for name := range podRoles {
		svc := p.Services[name]
		if got := envValue(svc, "CLUSTER_KEY"); got != key {
			t.Errorf("%s: CLUSTER_KEY %q, want %q from STEADFAST_ENV_FILE", name, got, key)
		}
		if got := envValue(svc, "LOG_LEVEL"); got != "debug" {
			t.Errorf("%s: LOG_LEVEL %q, want debug from STEADFAST_ENV_FILE", name, got)
		}
	}
	if got := envValue(p.Services["publisher"], "BEATS"); got != "500" {
		t.Errorf("publisher: BEATS %q, want 500 from the environment", got)
	}
	if got := p.Services["publisher"].Ports[0].Published; got != "19091" {
		t.Errorf("publisher: metrics published on %q, want 19091", got)
	}

	if _, err := loadProject(root, []string{"STEADFAST_ENV_FILE=" + filepath.Join(t.TempDir(), "missing.env")}); err == nil {
		t.Error("a missing env file loaded without error; CLUSTER_KEY would be unset")
	}
}

// TestComposeChecksCatchMistakes feeds deliberately broken copies of the
// deployment files to the same checks, so that TestComposeFile cannot pass
// vacuously.
func TestComposeChecksCatchMistakes(t *testing.T) {
	root := repoRoot(t)
	type edit struct{ file, old, new string }
	cases := []struct {
		name  string
		edits []edit
		want  string
	}{
		{"seed names unknown service", []edit{{"docker-compose.yml", "JOIN: publisher:7946,subscriber-2:7946", "JOIN: publsher:7946,subscriber-2:7946"}}, `unknown service "publsher"`},
		{"seed names non-pod service", []edit{{"docker-compose.yml", "JOIN: publisher:7946,subscriber-2:7946", "JOIN: prometheus:7946,publisher:7946,subscriber-2:7946"}}, "not a pod"},
		{"seed on wrong port", []edit{{"docker-compose.yml", "JOIN: subscriber-1:7946,subscriber-2:7946", "JOIN: subscriber-1:7947,subscriber-2:7946"}}, "binds memberlist on port"},
		{"seed missing", []edit{{"docker-compose.yml", "JOIN: publisher:7946,subscriber-1:7946", "JOIN: publisher:7946"}}, "JOIN does not list subscriber-1"},
		{"duplicate node id", []edit{{"docker-compose.yml", "NODE_ID: subscriber-2", "NODE_ID: subscriber-1"}}, "already used"},
		{"restart policy", []edit{{"docker-compose.yml", "  restart: unless-stopped\n  stop_grace_period", "  restart: \"no\"\n  stop_grace_period"}}, "want unless-stopped"},
		{"host volume", []edit{{"docker-compose.yml", "  restart: unless-stopped\n  stop_grace_period", "  volumes: [\"./.data:/data\"]\n  restart: unless-stopped\n  stop_grace_period"}}, "no volumes"},
		{"healthcheck", []edit{{"docker-compose.yml", `test: ["CMD", "/usr/local/bin/publisher", "--healthcheck"]`, `test: ["CMD", "/usr/local/bin/publisher"]`}}, "healthcheck test"},
		{"metrics on all interfaces", []edit{{"docker-compose.yml", `"127.0.0.1:${SUBSCRIBER_2_METRICS_PORT:-9093}:9090"`, `"${SUBSCRIBER_2_METRICS_PORT:-9093}:9090"`}}, "127.0.0.1 only"},
		{"data port not exposed", []edit{{"docker-compose.yml", `    - "40123/udp"`, `    - "40124/udp"`}}, "DATA_ENDPOINT port 40123/udp"},
		{"exit when done", []edit{{"docker-compose.yml", "      EXIT_WHEN_DONE: \"false\"\n", ""}}, "EXIT_WHEN_DONE"},
		{"min subscribers", []edit{{"docker-compose.yml", `MIN_SUBSCRIBERS: "2"`, `MIN_SUBSCRIBERS: "1"`}}, "MIN_SUBSCRIBERS"},
		{"bad rate", []edit{{"docker-compose.yml", "RATE: ${RATE:-100ms}", "RATE: ${RATE:-fast}"}}, "RATE"},
		{"pod in a profile", []edit{{"docker-compose.yml", "  subscriber-2:\n    <<: *pod\n", "  subscriber-2:\n    <<: *pod\n    profiles: [extra]\n"}}, `pod service "subscriber-2" missing`},
		{"prometheus misses a pod", []edit{{"deploy/prometheus/prometheus.yml", `["subscriber-2:9090"]`, `["subscriber-3:9090"]`}}, `no scrape target "subscriber-2:9090"`},
		{"dashboard misses a topic", []edit{{"deploy/grafana/dashboards/steadfast.json", `"title": "Outbox depth`, `"title": "Queue depth`}}, `"outbox"`},
		{"dashboard plots a raw counter", []edit{{"deploy/grafana/dashboards/steadfast.json", `rate(steadfast_duplicates_dropped_total[1m])`, `steadfast_duplicates_dropped_total`}}, "plots counter steadfast_duplicates_dropped_total raw"},
		{"dashboard has no latency p99", []edit{{"deploy/grafana/dashboards/steadfast.json", `histogram_quantile(0.99, `, `histogram_quantile(0.9, `}}, "no p99 of steadfast_delivery_latency_seconds"},
		{"dashboard has no round-trip p99", []edit{{"deploy/grafana/dashboards/steadfast.json",
			`histogram_quantile(0.99, sum by (service, le) (rate(steadfast_replication_round_trip_seconds_bucket[5m])))`,
			`histogram_quantile(0.5, sum by (service, le) (rate(steadfast_replication_round_trip_seconds_bucket[5m])))`}}, "no p99 of steadfast_replication_round_trip_seconds"},
		{"dashboard has no restore p99", []edit{{"deploy/grafana/dashboards/steadfast.json",
			`histogram_quantile(0.99, sum by (service, le) (rate(steadfast_restore_seconds_bucket[1h])))`,
			`max by (service) (steadfast_restore_seconds_sum)`}}, "no p99 of steadfast_restore_seconds"},
		{"dashboard misses the transport", []edit{{"deploy/grafana/dashboards/steadfast.json", `"title": "Transport bytes`, `"title": "Bytes`},
			{"deploy/grafana/dashboards/steadfast.json", `"title": "Transport NAKs`, `"title": "NAKs`},
			{"deploy/grafana/dashboards/steadfast.json", `"title": "Transport drops`, `"title": "Drops`}}, `"transport"`},
		{"dashboard plots the outbox full events raw", []edit{{"deploy/grafana/dashboards/steadfast.json", `rate(steadfast_outbox_full_total[5m])`, `steadfast_outbox_full_total`}}, "plots counter steadfast_outbox_full_total raw"},
		{"dashboard latency over raw buckets", []edit{{"deploy/grafana/dashboards/steadfast.json",
			`histogram_quantile(0.99, sum by (service, le) (rate(steadfast_delivery_latency_seconds_bucket[1m])))`,
			`histogram_quantile(0.99, sum by (service, le) (steadfast_delivery_latency_seconds_bucket))`}}, "plots counter steadfast_delivery_latency_seconds_bucket raw"},
		{"grafana starts before prometheus is healthy", []edit{{"docker-compose.yml", "condition: service_healthy", "condition: service_started"}}, "grafana must wait for prometheus"},
		{"short cluster key", []edit{{"deploy/local.env", "\nCLUSTER_KEY=", "\nCLUSTER_KEY=c2hvcnQ=\n# "}}, "CLUSTER_KEY"},
	}
	files := []string{"docker-compose.yml", "Dockerfile", "deploy/local.env", "deploy/prometheus/prometheus.yml",
		"deploy/grafana/provisioning/datasources/prometheus.yml", "deploy/grafana/provisioning/dashboards/steadfast.yml",
		"deploy/grafana/dashboards/steadfast.json"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range tc.edits {
					if e.file != f {
						continue
					}
					s := strings.Replace(string(b), e.old, e.new, 1)
					if s == string(b) {
						t.Fatalf("stale mutation: %q not found in %s", e.old, f)
					}
					b = []byte(s)
				}
				dst := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p, err := loadProject(dir, nil, "observability")
			if err != nil {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
				t.Fatalf("load: %v (want a problem mentioning %q)", err, tc.want)
			}
			errs := checkCompose(p)
			for _, e := range errs {
				if strings.Contains(e.Error(), tc.want) {
					return
				}
			}
			t.Errorf("broken file passed: want a problem mentioning %q, got %v", tc.want, errs)
		})
	}
}

// TestDockerfile checks the image recipe: official Go image on the build
// platform, static build with cache mounts and the version, minimal non-root
// base, OCI labels, healthcheck through the pod binary.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build",
		"ARG GO_VERSION=1.26\n",
		"ARG BASE=gcr.io/distroless/static-debian12:nonroot\n",
		"ARG BINARIES=build\n",
		"--mount=type=cache,target=/go/pkg/mod",
		"--mount=type=cache,target=/root/.cache/go-build",
		"CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64}",
		"-X github.com/steadfast-pods/steadfast/internal/buildinfo.version=${VERSION}",
		"./cmd/publisher ./cmd/subscriber ./cmd/runner",
		"org.opencontainers.image.source=",
		`org.opencontainers.image.version="${VERSION}"`,
		"USER 65532:65532",
		`CMD ["/usr/local/bin/subscriber", "--healthcheck"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK `).MatchString(df) {
		t.Error("Dockerfile has no HEALTHCHECK")
	}
	if regexp.MustCompile(`(?m)^USER\s+(root|0)\b`).MatchString(df) {
		t.Error("Dockerfile runs as root")
	}
	di, err := os.ReadFile(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\.git$`).Match(di) {
		t.Error(".dockerignore does not keep .git out of the build context")
	}
}

// TestPrometheusConfigPromtool validates deploy/prometheus/prometheus.yml with
// Prometheus' own checker when it is installed (Debian package prometheus).
func TestPrometheusConfigPromtool(t *testing.T) {
	promtool := promtoolPath(t)
	out, err := exec.Command(promtool, "check", "config", "--syntax-only", filepath.Join(repoRoot(t), "deploy", "prometheus", "prometheus.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("scrape_configs:\n  - job_name: x\n    scrape_interval: fast\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", "--syntax-only", bad).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a broken config:\n%s", out)
	}
}

// TestEnvExampleDocumentsComposeVariables: every ${VAR:-default} in
// docker-compose.yml is listed in .env.example with the same default.
func TestEnvExampleDocumentsComposeVariables(t *testing.T) {
	root := repoRoot(t)
	compose, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]*)=(.*)$`).FindAllStringSubmatch(string(example), -1) {
		documented[m[1]] = m[2]
	}
	uses := regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}`).FindAllStringSubmatch(string(compose), -1)
	if len(uses) == 0 {
		t.Fatal("docker-compose.yml uses no ${VAR}")
	}
	for _, m := range uses {
		def, ok := documented[m[1]]
		switch {
		case !ok:
			t.Errorf("docker-compose.yml uses ${%s}, which .env.example does not list", m[1])
		case def != m[2]:
			t.Errorf("${%s}: default %q in docker-compose.yml, %q in .env.example", m[1], m[2], def)
		}
	}
}
