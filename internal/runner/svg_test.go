package runner

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svgElems parses doc with encoding/xml and counts elements by name and by
// class attribute; it fails on anything that is not well-formed XML with
// an <svg> root in the SVG namespace.
func svgElems(t *testing.T, doc string) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	counts := map[string]int{}
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (e.Name.Local != "svg" || e.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", e.Name)
			}
			depth++
			counts[e.Name.Local]++
			for _, a := range e.Attr {
				if a.Name.Local == "class" {
					counts["."+a.Value]++
				}
				if a.Name.Local == "points" {
					for _, p := range strings.Fields(a.Value) {
						x, y, ok := strings.Cut(p, ",")
						if _, err := strconv.ParseFloat(x, 64); !ok || err != nil {
							t.Fatalf("bad point %q", p)
						}
						if _, err := strconv.ParseFloat(y, 64); err != nil {
							t.Fatalf("bad point %q", p)
						}
					}
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		t.Fatal("unbalanced SVG")
	}
	return counts
}

func checkSVG(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := svgElems(t, string(b))
	if c[".published"] != 1 || c[".delivered"] != 1 {
		t.Fatalf("%s: no throughput lines (%v)", path, c)
	}
	return c
}

// TestReportSVG renders a report with kills, recovery times and a latency
// histogram, and a nearly empty one, and checks both parse as SVG with the
// expected marks.
func TestReportSVG(t *testing.T) {
	rep := &Report{
		OK: true, Published: 3000, Delivered: 3000, Kills: 2, ElapsedSeconds: 4,
		Version: "v1.2.3 <dev> & co", StartTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Config: ReportConfig{Publishers: 1, Subscribers: 1, Beats: 100, Batch: 30, Rate: "10ms"},
		Timeline: []TimelinePoint{
			{Seconds: 0.5, Published: 0, Delivered: 0}, {Seconds: 1, Published: 700, Delivered: 600},
			{Seconds: 2, Published: 1500, Delivered: 1500}, {Seconds: 3, Published: 2500, Delivered: 2400}, {Seconds: 4, Published: 3000, Delivered: 3000},
		},
		KillTimes:            []KillMark{{Seconds: 1.2, NodeID: "subscriber-1", DeliveringAfter: 0.4}, {Seconds: 2.5, NodeID: "publisher-1"}},
		Latency:              &Histogram{Buckets: []LatencyBucket{{0.001, 10}, {0.01, 2500}, {0.1, 2990}}, Count: 3000, Sum: 12.5},
		ReplicationRoundTrip: &Histogram{Buckets: []LatencyBucket{{0.001, 40}, {0.01, 50}}, Count: 50, Sum: 0.2},
	}
	c := svgElems(t, ReportSVG(rep))
	want := map[string]int{".published": 1, ".delivered": 1, ".kill": 2, ".recovery": 1, ".kill-to-delivering": 1, ".latency-bucket": 4 + 3, ".quantile": 2 + 2}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s: %d elements, want %d (all: %v)", k, c[k], v, c)
		}
	}
	if !strings.Contains(ReportSVG(rep), "v1.2.3 &lt;dev&gt; &amp; co") {
		t.Error("text not escaped")
	}
	// The latency quantiles are written out: p50 at rank 1490 of the 2490
	// samples in (1 ms, 10 ms], p99 at rank 470 of the 490 in (10 ms, 100 ms].
	for _, want := range []string{"3000 samples, p50 6.39ms, p99 96.33ms, mean 4.17ms", ">p50 6.39ms<", ">p99 96.33ms<"} {
		if !strings.Contains(ReportSVG(rep), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}

	empty := svgElems(t, ReportSVG(&Report{}))
	if empty[".kill"] != 0 || empty[".latency-bucket"] != 0 || empty["svg"] != 1 {
		t.Errorf("empty report: %v", empty)
	}
}

// TestHistogramQuantile checks the estimate against histogram_quantile's
// rules: linear inside the bucket holding the rank, from 0 in the first
// bucket, the last finite bound for a rank in the overflow, NaN without
// samples.
func TestHistogramQuantile(t *testing.T) {
	h := &Histogram{Buckets: []LatencyBucket{{0.001, 0}, {0.002, 50}, {0.005, 50}, {0.01, 90}}, Count: 100}
	for _, tc := range []struct {
		q, want float64
		over    bool
	}{
		{0.25, 0.0015, false}, // rank 25 of 50 in (1 ms, 2 ms]
		{0.5, 0.002, false},   // rank 50: the end of (1 ms, 2 ms], not the empty bucket after it
		{0.7, 0.0075, false},  // rank 70: half of (5 ms, 10 ms]
		{0.95, 0.01, true},    // rank 95: beyond the last bucket
	} {
		if got := h.Quantile(tc.q); math.Abs(got-tc.want) > 1e-12 || h.overflows(tc.q) != tc.over {
			t.Errorf("q %v: %v (overflow %v), want %v (%v)", tc.q, got, h.overflows(tc.q), tc.want, tc.over)
		}
	}
	if got := quantileText(h, 0.95); got != "> 10ms" {
		t.Errorf("overflowing quantile printed %q", got)
	}
	first := &Histogram{Buckets: []LatencyBucket{{0.004, 4}}, Count: 4}
	if got := first.Quantile(0.5); got != 0.002 {
		t.Errorf("first bucket: %v, want 0.002 (interpolated from 0)", got)
	}
	for _, e := range []*Histogram{nil, {}, {Buckets: h.Buckets}} {
		if !math.IsNaN(e.Quantile(0.5)) {
			t.Errorf("%+v: a quantile without samples", e)
		}
	}
	if !math.IsNaN(h.Quantile(1.5)) {
		t.Error("q > 1 accepted")
	}
}
