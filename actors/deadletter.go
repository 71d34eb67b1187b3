package actors

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DeadLetter is a message that crashed its consumer ShowstopperThreshold
// times in a row while at the head of the consumer's input (a showstopper).
// The supervisor removed it from the input so the consumer could go on.
type DeadLetter struct {
	Actor   string    // the consumer that kept crashing
	Channel string    // the input it was taken from
	Pos     uint64    // its position in that channel
	Message any       // the message itself
	Panic   any       // the last panic value, or nil if the actor returned an error
	Err     error     // the last returned error, or nil if it panicked
	Stack   string    // an excerpt of the last panic's stack
	Crashes int       // consecutive crashes with this message in flight
	At      time.Time // when it was moved (graph clock)
}

// deadLetters is the graph's bounded dead-letter queue: the oldest entry is
// evicted (and counted) when it is full. Safe for concurrent use.
type deadLetters struct {
	mu      sync.Mutex // guards the fields below
	ring    []DeadLetter
	start   int // index of the oldest entry
	n       int // entries held
	total   uint64
	evicted uint64
}

func newDeadLetters(capacity int) *deadLetters {
	return &deadLetters{ring: make([]DeadLetter, capacity)}
}

// add queues d and logs it on log, which carries the actor's name.
func (q *deadLetters) add(d DeadLetter, log *slog.Logger) {
	q.mu.Lock()
	q.total++
	evicted := false
	if q.n == len(q.ring) {
		q.start = (q.start + 1) % len(q.ring)
		q.n--
		q.evicted++
		evicted = true
	}
	q.ring[(q.start+q.n)%len(q.ring)] = d
	q.n++
	total := q.total
	q.mu.Unlock()

	msg := fmt.Sprintf("%v", d.Message)
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	cause := fmt.Sprint(d.Panic)
	if d.Err != nil {
		cause = d.Err.Error()
	}
	log.Error("actors: showstopper moved to dead letters",
		"channel", d.Channel, "pos", d.Pos, "crashes", d.Crashes,
		"cause", cause, "message", msg, "dead_letters_total", total, "oldest_evicted", evicted)
}

func (q *deadLetters) list() []DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]DeadLetter, q.n)
	for i := range q.n {
		out[i] = q.ring[(q.start+i)%len(q.ring)]
	}
	return out
}

func (q *deadLetters) counts() (total, evicted uint64, held int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total, q.evicted, q.n
}
