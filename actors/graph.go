package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sentinel errors.
var (
	ErrStarted     = errors.New("actors: graph already started")
	ErrUnknownName = errors.New("actors: no actor with state of that name")
)

// Config configures a Graph. Zero fields take the DefaultConfig values.
type Config struct {
	// Logger receives restarts, dead letters and shutdown reports. Default:
	// slog.Default().
	Logger *slog.Logger
	// Clock drives restart backoff and the restart budget window (and the
	// actors' own timing through ctx.Clock()). Default: SystemClock. The
	// shutdown timeout always uses real time.
	Clock Clock
	// Codec serialises actor states for SnapshotStates/RestoreStates.
	// Default: JSONCodec.
	Codec StateCodec
	// MaxRestarts within RestartWindow per actor; one more failure escalates.
	// Default 10 within 10s.
	MaxRestarts   int
	RestartWindow time.Duration
	// BackoffMin is the delay before the first restart; it doubles with each
	// consecutive failure up to BackoffMax. An actor that ran longer than
	// BackoffMax before failing starts over at BackoffMin. Defaults 1ms, 1s.
	// Set BackoffMin < 0 for no backoff at all.
	BackoffMin, BackoffMax time.Duration
	// ShowstopperThreshold is N: a head message in flight through N
	// consecutive crashes of its consumer goes to the dead letters. Default 3.
	ShowstopperThreshold int
	// DeadLetterCap bounds the dead-letter queue; the oldest is evicted and
	// counted when full. Default 1024.
	DeadLetterCap int
	// ShutdownTimeout is how long a graceful stop may take before the graph
	// aborts (closes every ctx.Done()) and reports the actors still busy.
	// Default 5s.
	ShutdownTimeout time.Duration
	// AbortGrace is how long the graph waits for actors to return after
	// aborting before it gives up on them. Default 1s.
	AbortGrace time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Logger:               slog.Default(),
		Clock:                SystemClock{},
		Codec:                JSONCodec{},
		MaxRestarts:          10,
		RestartWindow:        10 * time.Second,
		BackoffMin:           time.Millisecond,
		BackoffMax:           time.Second,
		ShowstopperThreshold: 3,
		DeadLetterCap:        1024,
		ShutdownTimeout:      5 * time.Second,
		AbortGrace:           time.Second,
	}
}

func (c *Config) fill() error {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.Codec == nil {
		c.Codec = d.Codec
	}
	if c.MaxRestarts == 0 {
		c.MaxRestarts = d.MaxRestarts
	}
	if c.RestartWindow == 0 {
		c.RestartWindow = d.RestartWindow
	}
	switch {
	case c.BackoffMin < 0:
		c.BackoffMin = 0
	case c.BackoffMin == 0:
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(d.BackoffMax, c.BackoffMin)
	}
	if c.ShowstopperThreshold == 0 {
		c.ShowstopperThreshold = d.ShowstopperThreshold
	}
	if c.DeadLetterCap == 0 {
		c.DeadLetterCap = d.DeadLetterCap
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.AbortGrace == 0 {
		c.AbortGrace = d.AbortGrace
	}
	switch {
	case c.MaxRestarts < 0:
		return errors.New("actors: MaxRestarts < 0")
	case c.RestartWindow < 0:
		return errors.New("actors: RestartWindow < 0")
	case c.BackoffMax < c.BackoffMin:
		return errors.New("actors: BackoffMax < BackoffMin")
	case c.ShowstopperThreshold < 1:
		return errors.New("actors: ShowstopperThreshold < 1")
	case c.DeadLetterCap < 1:
		return errors.New("actors: DeadLetterCap < 1")
	case c.ShutdownTimeout < 0 || c.AbortGrace < 0:
		return errors.New("actors: negative timeout")
	}
	return nil
}

// EscalationError is returned by Graph.Wait when an actor exceeded its
// restart budget or failed with the Escalate strategy.
type EscalationError struct {
	Actor    string
	Restarts int    // restarts within the budget before escalating
	Reason   string // e.g. "more than 10 restarts within 10s"
	Cause    error  // the last failure (a *PanicError for panics)
}

func (e *EscalationError) Error() string {
	return fmt.Sprintf("actors: actor %q escalated (%s) after %d restarts: %v", e.Actor, e.Reason, e.Restarts, e.Cause)
}

func (e *EscalationError) Unwrap() error { return e.Cause }

// ShutdownTimeoutError is returned by Graph.Wait when actors were still busy
// when the shutdown timeout passed.
type ShutdownTimeoutError struct {
	Timeout time.Duration
	Busy    []string // actors that had not stopped, sorted
	Stuck   []string // of those, actors that had not returned AbortGrace after the abort
}

func (e *ShutdownTimeoutError) Error() string {
	s := fmt.Sprintf("actors: shutdown timed out after %v; still busy: %s", e.Timeout, strings.Join(e.Busy, ", "))
	if len(e.Stuck) > 0 {
		s += "; stuck after abort: " + strings.Join(e.Stuck, ", ")
	}
	return s
}

// Graph is a set of supervised actors connected by channels: a pod's
// pipeline. Build it with Add, optionally RestoreStates, then Start and Wait
// (or Run). A Graph runs once.
type Graph struct {
	cfg  Config
	log  *slog.Logger
	dead *deadLetters

	mu       sync.Mutex // guards started, result, escalated, and Add's slices
	started  bool
	actors   []*actor
	byName   map[string]*actor
	chans    []Port
	escalErr error

	wg        sync.WaitGroup // running actor goroutines
	stopping  chan struct{}  // closed by Stop
	stopOnce  sync.Once
	abort     chan struct{} // closed when the shutdown timeout passes
	abortOnce sync.Once
	finished  chan struct{} // closed when Wait may return
	result    error
}

// NewGraph returns an empty graph.
func NewGraph(cfg Config) (*Graph, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &Graph{
		cfg:      cfg,
		log:      cfg.Logger,
		dead:     newDeadLetters(cfg.DeadLetterCap),
		byName:   map[string]*actor{},
		stopping: make(chan struct{}),
		abort:    make(chan struct{}),
		finished: make(chan struct{}),
	}, nil
}

// Add adds an actor. It fails after Start, for a duplicate or empty name, a
// nil Run, a State that is not a non-nil pointer, or a channel that would get
// a second producer or consumer.
func (g *Graph) Add(s Spec) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return ErrStarted
	}
	if s.Name == "" || s.Run == nil {
		return errors.New("actors: Spec needs a Name and a Run")
	}
	if _, dup := g.byName[s.Name]; dup {
		return fmt.Errorf("actors: duplicate actor name %q", s.Name)
	}
	if s.State != nil {
		v := reflect.ValueOf(s.State)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("actors: actor %q: State must be a non-nil pointer, got %T", s.Name, s.State)
		}
	}
	for _, in := range s.Inputs {
		_, cons := in.owners()
		if *cons != "" && *cons != s.Name {
			return fmt.Errorf("actors: channel %q already consumed by %q", in.Name(), *cons)
		}
	}
	for _, out := range s.Outputs {
		prod, _ := out.owners()
		if *prod != "" && *prod != s.Name {
			return fmt.Errorf("actors: channel %q already produced by %q", out.Name(), *prod)
		}
	}
	for _, in := range s.Inputs {
		_, cons := in.owners()
		*cons = s.Name
		g.addChan(in)
	}
	for _, out := range s.Outputs {
		prod, _ := out.owners()
		*prod = s.Name
		g.addChan(out)
	}
	a := &actor{
		g:           g,
		spec:        s,
		log:         g.log.With("actor", s.Name),
		maxRestarts: cmp(s.MaxRestarts, g.cfg.MaxRestarts),
		window:      cmp(s.RestartWindow, g.cfg.RestartWindow),
		threshold:   cmp(s.ShowstopperThreshold, g.cfg.ShowstopperThreshold),
		crashes:     map[Input]*crashTrack{},
	}
	a.ctx = &Context{a: a}
	g.actors = append(g.actors, a)
	g.byName[s.Name] = a
	return nil
}

func cmp[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (g *Graph) addChan(p Port) {
	for _, q := range g.chans {
		if q == p {
			return
		}
	}
	g.chans = append(g.chans, p)
}

// Start starts every actor on its own goroutine. Cancelling ctx begins a
// graceful stop (as Stop does). Start returns ErrStarted if called twice.
func (g *Graph) Start(ctx context.Context) error {
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return ErrStarted
	}
	g.started = true
	actors := slices.Clone(g.actors)
	g.mu.Unlock()

	g.wg.Add(len(actors))
	for _, a := range actors {
		go a.loop()
	}
	allDone := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(allDone)
	}()
	go g.watch(ctx, allDone)
	return nil
}

// watch turns ctx cancellation into a graceful stop, enforces the shutdown
// timeout and records the result for Wait.
func (g *Graph) watch(ctx context.Context, allDone chan struct{}) {
	var timeoutErr error
	defer func() {
		g.Stop()
		g.abortOnce.Do(func() { close(g.abort) })
		g.mu.Lock()
		g.result = errors.Join(g.escalErr, timeoutErr)
		g.mu.Unlock()
		close(g.finished)
	}()
	select {
	case <-allDone:
		return
	case <-ctx.Done():
		g.log.Info("actors: stop requested", "cause", context.Cause(ctx))
		g.Stop()
	case <-g.stopping:
	}
	timer := time.NewTimer(g.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-allDone:
		return
	case <-timer.C:
	}
	busy := g.busy()
	g.log.Error("actors: shutdown timed out; aborting", "timeout_seconds", g.cfg.ShutdownTimeout.Seconds(), "busy", busy)
	g.abortOnce.Do(func() { close(g.abort) })
	grace := time.NewTimer(g.cfg.AbortGrace)
	defer grace.Stop()
	var stuck []string
	select {
	case <-allDone:
	case <-grace.C:
		stuck = g.busy()
		g.log.Error("actors: actors did not return after abort", "stuck", stuck)
	}
	timeoutErr = &ShutdownTimeoutError{Timeout: g.cfg.ShutdownTimeout, Busy: busy, Stuck: stuck}
}

// busy lists the actors that have not stopped, sorted.
func (g *Graph) busy() []string {
	var names []string
	for _, a := range g.actors {
		a.mu.Lock()
		if a.status != StatusStopped && a.status != StatusFailed {
			names = append(names, a.spec.Name)
		}
		a.mu.Unlock()
	}
	slices.Sort(names)
	return names
}

// Stop begins a graceful stop: sources see ctx.Stopping() and return, the
// other actors drain their inputs, each stopped actor's outputs are closed.
// Safe to call more than once and before Start.
func (g *Graph) Stop() {
	g.stopOnce.Do(func() { close(g.stopping) })
}

// Wait blocks until every actor has stopped, or the shutdown timeout and
// abort grace have passed, and returns nil, an *EscalationError, a
// *ShutdownTimeoutError, or both joined (test with errors.As).
func (g *Graph) Wait() error {
	<-g.finished
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.result
}

// Done is closed when Wait would return.
func (g *Graph) Done() <-chan struct{} { return g.finished }

// Run is Start followed by Wait.
func (g *Graph) Run(ctx context.Context) error {
	if err := g.Start(ctx); err != nil {
		return err
	}
	return g.Wait()
}

// escalate records the first escalation and begins a graceful stop.
func (g *Graph) escalate(e *EscalationError) {
	g.mu.Lock()
	if g.escalErr == nil {
		g.escalErr = e
	}
	g.mu.Unlock()
	g.log.Error("actors: escalation; stopping the graph", "actor", e.Actor, "reason", e.Reason, "err", e.Cause)
	g.Stop()
}

// DeadLetters returns the dead letters held, oldest first.
func (g *Graph) DeadLetters() []DeadLetter { return g.dead.list() }

// ActorStats is a point-in-time view of an actor.
type ActorStats struct {
	Name         string
	Status       Status
	Restarts     int    // restarts since Start
	Resumes      int    // resumes after resumable errors
	LastFailure  string // the last failure's message, "" if none
	StateVersion uint64 // incremented on each publication of its state
}

// Stats is a point-in-time view of the graph, for metrics.
type Stats struct {
	Actors             []ActorStats // in the order they were added
	Channels           []ChanStats  // in the order they were first seen
	DeadLetters        uint64       // total ever moved to dead letters
	DeadLettersEvicted uint64       // of those, evicted because the queue was full
	DeadLettersHeld    int
}

// Stats returns the graph's counters. Safe to call at any time.
func (g *Graph) Stats() Stats {
	g.mu.Lock()
	actors := slices.Clone(g.actors)
	chans := slices.Clone(g.chans)
	g.mu.Unlock()
	var s Stats
	for _, a := range actors {
		a.mu.Lock()
		s.Actors = append(s.Actors, ActorStats{
			Name: a.spec.Name, Status: a.status, Restarts: a.restarts,
			Resumes: a.resumes, LastFailure: a.lastFail, StateVersion: a.version,
		})
		a.mu.Unlock()
	}
	for _, c := range chans {
		s.Channels = append(s.Channels, c.Stats())
	}
	s.DeadLetters, s.DeadLettersEvicted, s.DeadLettersHeld = g.dead.counts()
	return s
}

// SnapshotStates returns every stateful actor's state, serialised with the
// graph's codec, keyed by actor name. Safe at any time, race-free, and
// consistent per actor:
//   - an actor that is not inside its behaviour (before Start, restarting,
//     stopped) is serialised as it is now, under the actor's lock;
//   - a running actor contributes its latest published state: the one it
//     had when its behaviour was last (re)started, or at its latest
//     Checkpoint after MarkDirty, whichever is newer.
//
// So an actor that keeps related fields in one state value (counters and the
// watermark they cover) gets them from the same safe point. Different actors
// may be at different points; a pod that needs a cross-actor cut keeps the
// related data in one actor's state.
func (g *Graph) SnapshotStates() (map[string][]byte, error) {
	g.mu.Lock()
	actors := slices.Clone(g.actors)
	g.mu.Unlock()
	out := make(map[string][]byte, len(actors))
	var errs []error
	for _, a := range actors {
		if a.spec.State == nil {
			continue
		}
		a.mu.Lock()
		if a.status == StatusRunning && a.published != nil {
			out[a.spec.Name] = bytes.Clone(a.published)
		} else {
			b, err := g.cfg.Codec.Marshal(a.spec.State)
			if err != nil {
				errs = append(errs, fmt.Errorf("actors: snapshot %q: %w", a.spec.Name, err))
			} else {
				out[a.spec.Name] = b
			}
		}
		a.mu.Unlock()
	}
	return out, errors.Join(errs...)
}

// RestoreStates decodes states (as returned by SnapshotStates) into the
// actors' state values. Call it after Add and before Start. A name with no
// stateful actor is an error wrapping ErrUnknownName; actors absent from
// states keep their current state.
func (g *Graph) RestoreStates(states map[string][]byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return ErrStarted
	}
	names := make([]string, 0, len(states))
	for name := range states {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		a := g.byName[name]
		if a == nil || a.spec.State == nil {
			return fmt.Errorf("%w: %q", ErrUnknownName, name)
		}
	}
	for _, name := range names {
		a := g.byName[name]
		if err := g.cfg.Codec.Unmarshal(states[name], a.spec.State); err != nil {
			return fmt.Errorf("actors: restore %q: %w", name, err)
		}
	}
	return nil
}
