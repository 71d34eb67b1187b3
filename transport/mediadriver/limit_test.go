package mediadriver

import (
	"testing"

	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// The publisher limit moves up only in steps of an eighth of the window,
// and down at once.
func TestPublisherLimitTripGain(t *testing.T) {
	p := &publication{window: 8 << 10, limitSlot: cnc.AlignedCopy(make([]byte, cnc.CounterValueLength))}
	steps := []struct {
		limit, want int64
		stored      bool
	}{
		{8 << 10, 8 << 10, true},       // first limit
		{8<<10 + 512, 8 << 10, false},  // below the trip (+1 KiB)
		{9<<10 - 32, 8 << 10, false},   // still below
		{9 << 10, 9 << 10, true},       // at the trip
		{9<<10 + 1000, 9 << 10, false}, // below the next trip
		{4 << 10, 4 << 10, true},       // falls (subscriber gone): at once
		{4<<10 + 32, 4 << 10, false},   // trip is 5 KiB now
		{12 << 10, 12 << 10, true},     // far above
		{12 << 10, 12 << 10, false},    // unchanged
	}
	for i, s := range steps {
		if s.stored != (p.setLimit(s.limit)) || cnc.LoadInt64(p.limitSlot, 0) != s.want {
			t.Fatalf("step %d: setLimit(%d): limit %d, want %d (stored want %v)", i, s.limit, cnc.LoadInt64(p.limitSlot, 0), s.want, s.stored)
		}
	}
}
