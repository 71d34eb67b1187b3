package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sample is one metric line of the Prometheus text format.
type sample struct {
	labels map[string]string
	value  float64
}

// metrics are parsed samples by metric name.
type metrics map[string][]sample

// parseMetrics reads the Prometheus text exposition format (the subset the
// pods emit: no timestamps needed, escaped label values handled). Lines it
// cannot parse are skipped.
func parseMetrics(r io.Reader) metrics {
	out := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, rest, ok := splitSample(line)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] = append(out[name], sample{labels: labels, value: v})
	}
	return out
}

func splitSample(line string) (name string, labels map[string]string, rest string, ok bool) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, "", false
	}
	name = line[:i]
	if line[i] == ' ' {
		return name, nil, line[i+1:], true
	}
	labels = map[string]string{}
	s := line[i+1:]
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return name, labels, s[1:], true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return "", nil, "", false
		}
		key := s[:eq]
		s = s[eq+2:]
		var val strings.Builder
		j := 0
		for ; j < len(s); j++ {
			c := s[j]
			if c == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[j])
				}
				continue
			}
			if c == '"' {
				break
			}
			val.WriteByte(c)
		}
		if j >= len(s) {
			return "", nil, "", false
		}
		labels[key] = val.String()
		s = s[j+1:]
	}
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

func scrape(ctx context.Context, client *http.Client, addr string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("runner: scrape %s: %s", addr, resp.Status)
	}
	return parseMetrics(resp.Body), nil
}
