// Package robust (test files only) is the pods' pipeline in one process, on the actors
// runtime alone (no transport, no cluster): heartbeat → generator → worker
// (FizzBuzz) → logger, with failure injection. It is the runtime's
// end-to-end test bed, run by its tests:
//
//	go test -race -run TestRobust -v ./internal/robust
//
// With transient panics and showstoppers injected, the logger's final counts
// must match the closed form for the values that were not dead-lettered.
//
//   - heartbeat (source): one beat every Rate on the graph's clock; stops
//     after Beats beats or on a graceful stop. State: beats sent.
//   - generator: for each beat, the next BatchSize values; value = seq,
//     seq = 1, 2, ... State: next seq. Consumes the beat and sends the batch
//     in one step (actors.Forward).
//   - worker: FizzBuzz on batches (actors.Forward); panics on injected values.
//   - logger: counts each category and the sum of the plain values; dedups
//     by seq, so a batch re-delivered after a crash is not counted twice.
//     State: the counts and the last seq applied.
package robust

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/steadfast-pods/steadfast/actors"
	"github.com/steadfast-pods/steadfast/internal/fizzbuzz"
)

// Actor names.
const (
	Heartbeat = "heartbeat"
	Generator = "generator"
	Worker    = "worker"
	Logger    = "logger"
)

// Kind is a FizzBuzz category (internal/fizzbuzz's, with this package's
// String).
type Kind fizzbuzz.Category

const (
	Plain    = Kind(fizzbuzz.Plain)
	Fizz     = Kind(fizzbuzz.Fizz)
	Buzz     = Kind(fizzbuzz.Buzz)
	FizzBuzz = Kind(fizzbuzz.FizzBuzz)
)

func (k Kind) String() string {
	return [...]string{"value", "Fizz", "Buzz", "FizzBuzz"}[k]
}

// Classify is FizzBuzz: 15 → FizzBuzz, 3 → Fizz, 5 → Buzz, else the value.
func Classify(v uint64) Kind { return Kind(fizzbuzz.Classify(v)) }

// Beat is one heartbeat.
type Beat struct{ N uint64 }

// Value is a generated value with its sequence number.
type Value struct{ Seq, V uint64 }

// Result is a worker output.
type Result struct {
	Seq, V uint64
	Kind   Kind
}

// HeartbeatState is the heartbeat's persistent state.
type HeartbeatState struct{ Sent uint64 }

// GeneratorState is the generator's persistent state.
type GeneratorState struct{ NextSeq uint64 }

// LoggerState is the logger's persistent state: the counts and the last seq
// they cover, kept together so a snapshot is one consistent cut.
type LoggerState struct {
	FizzBuzz, Fizz, Buzz, Plain uint64
	PlainSum                    uint64
	LastSeq                     uint64 // highest seq applied
	Gaps                        uint64 // seqs skipped (dead-lettered upstream)
	Replayed                    uint64 // re-delivered results ignored (seq <= LastSeq)
}

// Total is the number of values counted.
func (s *LoggerState) Total() uint64 { return s.FizzBuzz + s.Fizz + s.Buzz + s.Plain }

// Expected returns the logger state for values 1..n without the values in
// skip: the closed form ⌊n/15⌋, ⌊n/3⌋−⌊n/15⌋, ⌊n/5⌋−⌊n/15⌋, minus the
// skipped values' categories (values outside 1..n and repeats are
// ignored). LastSeq, Gaps and Replayed are left zero.
func Expected(n uint64, skip ...uint64) LoggerState {
	var excluded []uint64
	seen := map[uint64]bool{}
	for _, v := range skip {
		if v < 1 || v > n || seen[v] {
			continue
		}
		seen[v] = true
		excluded = append(excluded, v)
	}
	e := fizzbuzz.Expected(n, excluded)
	return LoggerState{FizzBuzz: e.FizzBuzz, Fizz: e.Fizz, Buzz: e.Buzz, Plain: e.Plain, PlainSum: e.PlainSum}
}

// Options configure a Pipeline.
type Options struct {
	Beats     uint64        // beats before the heartbeat stops; 0: until stopped
	Rate      time.Duration // between beats, on the graph's clock
	BatchSize int           // values per beat (default 100)
	// ChannelCap is the capacity of each channel (default 1024; at least
	// BatchSize).
	ChannelCap int
	// WorkerBatch and LoggerBatch bound how many messages one step peeks
	// (default 64).
	WorkerBatch, LoggerBatch int

	// Failure injection.
	WorkerPanicOnce    []uint64 // the worker panics the first time it meets each value
	Showstoppers       []uint64 // the worker panics every time it meets these values
	LoggerPanicOnce    []uint64 // the logger panics once after applying each value, before committing
	GeneratorPanicOnce []uint64 // the generator panics once on each of these beats
	HeartbeatPanicOnce []uint64 // the heartbeat panics once before sending each of these beats

	// Graph configures the runtime (clock, restart budget, threshold...).
	Graph actors.Config
}

// Pipeline is a built robust pipeline.
type Pipeline struct {
	Graph *actors.Graph
	// The actors' states (read them after Run returns, or use
	// Graph.SnapshotStates while running).
	HeartbeatState *HeartbeatState
	GeneratorState *GeneratorState
	LoggerState    *LoggerState

	opt    Options
	inject *injector
	beats  *actors.Chan[Beat]
	values *actors.Chan[Value]
	result *actors.Chan[Result]
}

// injector fires injected panics; "once" survives restarts because it lives
// outside the actors.
type injector struct {
	mu    sync.Mutex // guards fired
	fired map[string]bool
	sets  map[string]map[uint64]bool
	stop  map[uint64]bool // showstoppers: always
}

func newInjector(o Options) *injector {
	in := &injector{fired: map[string]bool{}, sets: map[string]map[uint64]bool{}, stop: map[uint64]bool{}}
	add := func(name string, vs []uint64) {
		m := map[uint64]bool{}
		for _, v := range vs {
			m[v] = true
		}
		in.sets[name] = m
	}
	add(Worker, o.WorkerPanicOnce)
	add(Logger, o.LoggerPanicOnce)
	add(Generator, o.GeneratorPanicOnce)
	add(Heartbeat, o.HeartbeatPanicOnce)
	for _, v := range o.Showstoppers {
		in.stop[v] = true
	}
	return in
}

// maybePanic panics if v is injected for actor (once), or is a showstopper
// (every time, worker only).
func (in *injector) maybePanic(actor string, v uint64) {
	if actor == Worker && in.stop[v] {
		panic(fmt.Sprintf("injected showstopper %d", v))
	}
	if !in.sets[actor][v] {
		return
	}
	key := fmt.Sprint(actor, "/", v)
	in.mu.Lock()
	fire := !in.fired[key]
	in.fired[key] = true
	in.mu.Unlock()
	if fire {
		panic(fmt.Sprintf("injected transient panic in %s at %d", actor, v))
	}
}

// New builds the pipeline's graph (not started).
func New(opt Options) (*Pipeline, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = 100
	}
	if opt.ChannelCap <= 0 {
		opt.ChannelCap = 1024
	}
	if opt.WorkerBatch <= 0 {
		opt.WorkerBatch = 64
	}
	if opt.LoggerBatch <= 0 {
		opt.LoggerBatch = 64
	}
	if opt.ChannelCap < opt.BatchSize {
		return nil, errors.New("robust: ChannelCap < BatchSize")
	}
	g, err := actors.NewGraph(opt.Graph)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		Graph:          g,
		HeartbeatState: &HeartbeatState{},
		GeneratorState: &GeneratorState{NextSeq: 1},
		LoggerState:    &LoggerState{},
		opt:            opt,
		inject:         newInjector(opt),
		beats:          actors.NewChan[Beat]("beats", 64),
		values:         actors.NewChan[Value]("values", opt.ChannelCap),
		result:         actors.NewChan[Result]("results", opt.ChannelCap),
	}
	specs := []actors.Spec{
		{Name: Heartbeat, Run: p.heartbeat, State: p.HeartbeatState, Outputs: []actors.Port{p.beats}},
		{Name: Generator, Run: p.generator, State: p.GeneratorState,
			Inputs: []actors.Input{p.beats}, Outputs: []actors.Port{p.values}},
		{Name: Worker, Run: p.worker, Inputs: []actors.Input{p.values}, Outputs: []actors.Port{p.result}},
		{Name: Logger, Run: p.logger, State: p.LoggerState, Inputs: []actors.Input{p.result}},
	}
	for _, s := range specs {
		if err := g.Add(s); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Run runs the pipeline until the heartbeat has sent its beats and everything
// has drained, or ctx is cancelled (graceful stop).
func (p *Pipeline) Run(ctx context.Context) error { return p.Graph.Run(ctx) }

func (p *Pipeline) heartbeat(ctx *actors.Context) error {
	st := actors.StateOf[HeartbeatState](ctx)
	stop := actors.Signal(ctx.Stopping())
	for p.opt.Beats == 0 || st.Sent < p.opt.Beats {
		select {
		case <-ctx.Clock().After(p.opt.Rate):
		case <-ctx.Stopping():
			return nil
		}
		n := st.Sent + 1
		p.inject.maybePanic(Heartbeat, n)
		if !p.beats.Send(stop, Beat{N: n}) {
			return nil
		}
		st.Sent = n // no code between the send and this: they are one step
		ctx.MarkDirty()
		ctx.Checkpoint()
	}
	ctx.Logger().Info("heartbeat: all beats sent", "beats", st.Sent)
	return nil
}

func (p *Pipeline) generator(ctx *actors.Context) error {
	st := actors.StateOf[GeneratorState](ctx)
	buf := make([]Value, p.opt.BatchSize)
	for p.beats.WaitAvailable(ctx, 1) {
		b, _ := p.beats.TryPeek()
		p.inject.maybePanic(Generator, b.N)
		for i := range buf {
			seq := st.NextSeq + uint64(i)
			buf[i] = Value{Seq: seq, V: seq}
		}
		if !actors.Forward(ctx, p.beats, 1, p.values, buf) {
			return nil
		}
		st.NextSeq += uint64(len(buf)) // one step with the Forward above
		ctx.MarkDirty()
		ctx.Checkpoint()
	}
	return nil
}

func (p *Pipeline) worker(ctx *actors.Context) error {
	in := make([]Value, p.opt.WorkerBatch)
	out := make([]Result, p.opt.WorkerBatch)
	for p.values.WaitAvailable(ctx, 1) {
		n := p.values.PeekBatch(in)
		for i, v := range in[:n] {
			p.inject.maybePanic(Worker, v.V)
			out[i] = Result{Seq: v.Seq, V: v.V, Kind: Classify(v.V)}
		}
		if !actors.Forward(ctx, p.values, n, p.result, out[:n]) {
			return nil
		}
	}
	return nil
}

func (p *Pipeline) logger(ctx *actors.Context) error {
	st := actors.StateOf[LoggerState](ctx)
	log := ctx.Logger()
	buf := make([]Result, p.opt.LoggerBatch)
	for p.result.WaitAvailable(ctx, 1) {
		n := p.result.PeekBatch(buf)
		for _, r := range buf[:n] {
			if r.Seq <= st.LastSeq {
				st.Replayed++ // applied before a crash, not committed then
				continue
			}
			if r.Seq > st.LastSeq+1 {
				st.Gaps += r.Seq - st.LastSeq - 1
			}
			switch r.Kind {
			case FizzBuzz:
				st.FizzBuzz++
			case Fizz:
				st.Fizz++
			case Buzz:
				st.Buzz++
			default:
				st.Plain++
				st.PlainSum += r.V
			}
			st.LastSeq = r.Seq
			ctx.MarkDirty()
			p.inject.maybePanic(Logger, r.V)
		}
		p.result.Commit(n)
		ctx.Checkpoint()
		log.Debug("logger: batch", "n", n, "last_seq", st.LastSeq, "fizzbuzz", st.FizzBuzz,
			"fizz", st.Fizz, "buzz", st.Buzz, "plain", st.Plain)
	}
	log.Info("logger: done", "last_seq", st.LastSeq, "fizzbuzz", st.FizzBuzz, "fizz", st.Fizz,
		"buzz", st.Buzz, "plain", st.Plain, "gaps", st.Gaps, "replayed", st.Replayed)
	return nil
}
