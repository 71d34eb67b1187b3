package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// sample is one sample of a counter, gauge or untyped metric.
type sample struct {
	labels map[string]string
	value  float64
}

// metrics are scraped samples by metric name; histograms keep their
// families (for the latency plots).
type metrics map[string][]sample

// parseMetrics reads the Prometheus text exposition format with
// prometheus/common/expfmt. Counters, gauges and untyped samples are kept
// by name; a histogram's _count and _sum are kept as samples too.
func parseMetrics(r io.Reader) (metrics, map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, nil, fmt.Errorf("runner: metrics: %w", err)
	}
	out := metrics{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[name] = append(out[name], sample{labels, m.Counter.GetValue()})
			case m.Gauge != nil:
				out[name] = append(out[name], sample{labels, m.Gauge.GetValue()})
			case m.Untyped != nil:
				out[name] = append(out[name], sample{labels, m.Untyped.GetValue()})
			case m.Histogram != nil:
				out[name+"_count"] = append(out[name+"_count"], sample{labels, float64(m.Histogram.GetSampleCount())})
				out[name+"_sum"] = append(out[name+"_sum"], sample{labels, m.Histogram.GetSampleSum()})
			}
		}
	}
	return out, fams, nil
}

// get returns the value of name with the given label pairs (all must
// match), and whether it exists.
func (m metrics) get(name string, kv ...string) (float64, bool) {
	for _, s := range m[name] {
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				match = false
				break
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// sum adds every sample of name.
func (m metrics) sum(name string) float64 {
	t := 0.0
	for _, s := range m[name] {
		t += s.value
	}
	return t
}

// label returns the value of label key on the first sample of name.
func (m metrics) label(name, key string) string {
	for _, s := range m[name] {
		if v, ok := s.labels[key]; ok {
			return v
		}
	}
	return ""
}

// get GETs http://addr+path (bounded in time and size) and hands the body
// to read.
func get(ctx context.Context, client *http.Client, addr, path, accept string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("runner: GET %s%s: %s", addr, path, resp.Status)
	}
	return read(io.LimitReader(resp.Body, maxScrape))
}

// maxScrape bounds what the runner reads from a pod.
const maxScrape = 16 << 20

// scrape reads a pod's /metrics.
func scrape(ctx context.Context, client *http.Client, addr string) (m metrics, fams map[string]*dto.MetricFamily, err error) {
	err = get(ctx, client, addr, "/metrics", "text/plain", func(r io.Reader) error {
		m, fams, err = parseMetrics(r)
		return err
	})
	return m, fams, err
}

// fetchStatus reads a pod's /status as JSON.
func fetchStatus(ctx context.Context, client *http.Client, addr string) (s pod.Status, err error) {
	err = get(ctx, client, addr, "/status", "application/json", func(r io.Reader) error {
		if err := json.NewDecoder(r).Decode(&s); err != nil {
			return fmt.Errorf("runner: /status of %s: %w", addr, err)
		}
		return nil
	})
	return s, err
}
