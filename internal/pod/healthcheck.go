package pod

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// IsHealthcheck reports whether args ask for the healthcheck subcommand
// ("healthcheck [URL]" or "--healthcheck[=URL]") and returns the URL given,
// if any.
func IsHealthcheck(args []string) (url string, ok bool) {
	if len(args) == 0 {
		return "", false
	}
	switch a := args[0]; {
	case a == "healthcheck" || a == "--healthcheck" || a == "-healthcheck":
		if len(args) > 1 {
			return args[1], true
		}
		return "", true
	case len(a) > len("--healthcheck=") && a[:len("--healthcheck=")] == "--healthcheck=":
		return a[len("--healthcheck="):], true
	}
	return "", false
}

// HealthURL returns the default healthcheck URL for a metrics address such
// as ":9090" or "0.0.0.0:9090": http://127.0.0.1:9090/healthz.
func HealthURL(metricsAddr string) (string, error) {
	if metricsAddr == "" {
		metricsAddr = DefaultConfig(Publisher).MetricsAddr
	}
	host, port, err := net.SplitHostPort(metricsAddr)
	if err != nil {
		return "", fmt.Errorf("%w: metrics address %q: %v", ErrUsage, metricsAddr, err)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// Healthcheck GETs url (default: HealthURL of $METRICS_ADDR) and returns the
// process exit status: 0 when it answered 200 within timeout, else 1 (with
// one line on out).
func Healthcheck(url string, getenv func(string) string, timeout time.Duration, out io.Writer) int {
	if url == "" {
		u, err := HealthURL(getenv("METRICS_ADDR"))
		if err != nil {
			fmt.Fprintln(out, "healthcheck:", err)
			return 1
		}
		url = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(out, "healthcheck:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(out, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "healthcheck: %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}
