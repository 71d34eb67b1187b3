package cluster

import (
	"testing"
	"time"
)

func TestDurHist(t *testing.T) {
	var h durHist
	for _, d := range []time.Duration{100 * time.Microsecond, 500 * time.Microsecond, 3 * time.Millisecond, 2 * time.Second, time.Minute} {
		h.observe(d)
	}
	s := h.snapshot()
	want := map[float64]uint64{.0005: 2, .001: 2, .0025: 2, .005: 3, 1: 3, 2.5: 4, 30: 4}
	for le, n := range want {
		if s.Buckets[le] != n {
			t.Errorf("bucket le=%v: %d, want %d", le, s.Buckets[le], n)
		}
	}
	if s.Count != 5 || s.Sum < 62 || s.Sum > 62.01 {
		t.Errorf("count %d sum %v", s.Count, s.Sum)
	}
}
