package orchtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/steadfast-pods/steadfast/internal/fizzbuzz"
)

// loggerTally is what a subscriber's /metrics says of one publisher's
// stream: the steadfast_logger_* samples labelled with that publisher.
type loggerTally struct {
	first, last, applied, lost uint64
	plainSum, deadLettered     float64
}

// loggerTallies parses a subscriber's /metrics page into a tally per
// publisher.
func loggerTallies(text string) map[string]loggerTally {
	out := map[string]loggerTally{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, "steadfast_logger_")
		if !ok {
			continue
		}
		name, rest, ok := strings.Cut(rest, `{publisher="`)
		if !ok {
			continue
		}
		pubID, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		t := out[pubID]
		switch name {
		case "applied_values":
			t.applied = uint64(v)
		case "first_seq":
			t.first = uint64(v)
		case "last_seq":
			t.last = uint64(v)
		case "lost_values":
			t.lost = uint64(v)
		case "plain_values_summed":
			t.plainSum = v
		case "dead_lettered":
			t.deadLettered = v
		default:
			continue
		}
		out[pubID] = t
	}
	return out
}

// check returns nil when the values applied are exactly lost+1..last, each
// once (by the closed-form FizzBuzz sum: a gap or a duplicate anywhere sums
// differently), none dead-lettered, and none lost unless late (a subscriber
// that joined after values were released gets the stream from the oldest
// value still held: those before count as lost).
func (t loggerTally) check(late bool) error {
	if t.first != 1 || t.deadLettered != 0 || t.applied+t.lost != t.last || t.applied == 0 || t.lost != 0 && !late {
		return fmt.Errorf("first %d, last %d, applied %d, lost %d, dead-lettered %v: want every value 1..last exactly once",
			t.first, t.last, t.applied, t.lost, t.deadLettered)
	}
	want := fizzbuzz.Expected(t.last, nil).PlainSum - fizzbuzz.Expected(t.lost, nil).PlainSum
	if math.Abs(t.plainSum-float64(want)) > 0.5 {
		return fmt.Errorf("plain values sum %v, the closed form of %d..%d says %d", t.plainSum, t.lost+1, t.last, want)
	}
	return nil
}
