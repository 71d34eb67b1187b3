package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Behavior is an actor's code. The supervisor calls it on the actor's own
// goroutine, and calls it again after each restart or resume with the same
// Context, the same state and the same channels. It returns nil when the actor
// is done (a source that was asked to stop, a consumer whose inputs are closed
// and empty); the supervisor then closes the actor's outputs. A panic or a
// returned error is a failure that the supervisor handles (see Directive).
type Behavior func(ctx *Context) error

// Directive is what the supervisor does when an actor fails.
type Directive int

const (
	// Restart calls the behaviour again after a backoff, with the same state
	// and channels, counting a restart against the budget. The default.
	Restart Directive = iota
	// Resume calls the behaviour again at once, without counting a restart
	// and without backoff. Used for errors wrapped with Resumable, whatever
	// the actor's Strategy.
	Resume
	// Stop ends the actor: its outputs are closed, its inputs detached, and
	// the rest of the graph keeps running.
	Stop
	// Escalate stops the actor and the whole graph gracefully; Graph.Wait
	// returns an *EscalationError.
	Escalate
)

func (d Directive) String() string {
	switch d {
	case Restart:
		return "restart"
	case Resume:
		return "resume"
	case Stop:
		return "stop"
	case Escalate:
		return "escalate"
	}
	return fmt.Sprintf("directive(%d)", int(d))
}

// Spec describes an actor for Graph.Add.
type Spec struct {
	Name string   // unique within the graph
	Run  Behavior // required
	// State is a pointer to the actor's persistent state (or nil). The
	// supervisor holds it; the actor reaches it with ctx.State() or StateOf.
	// It survives restarts and is what SnapshotStates/RestoreStates handle.
	State any
	// Inputs and Outputs are the channels this actor consumes and produces.
	// A channel may have one producer and one consumer in a graph. The
	// supervisor closes the outputs when the actor stops for good, detaches
	// the inputs, and watches the inputs for showstoppers.
	Inputs  []Input
	Outputs []Port
	// Strategy applies to panics and to errors not wrapped with Resumable.
	// Zero value: Restart.
	Strategy Directive
	// Overrides of the graph's Config for this actor (zero: use the graph's).
	MaxRestarts          int
	RestartWindow        time.Duration
	ShowstopperThreshold int
}

// Status is an actor's lifecycle state.
type Status int

const (
	StatusIdle       Status = iota // added, not started
	StatusRunning                  // inside its behaviour
	StatusRestarting               // failed, waiting for its backoff
	StatusStopped                  // returned nil: done
	StatusFailed                   // stopped by the Stop or Escalate directive, or aborted
)

func (s Status) String() string {
	switch s {
	case StatusIdle:
		return "idle"
	case StatusRunning:
		return "running"
	case StatusRestarting:
		return "restarting"
	case StatusStopped:
		return "stopped"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// resumableError marks an error after which the actor resumes.
type resumableError struct{ err error }

func (e *resumableError) Error() string { return e.err.Error() }
func (e *resumableError) Unwrap() error { return e.err }

// Resumable wraps err so that the supervisor resumes the actor (calls its
// behaviour again at once, no restart counted, no backoff) instead of applying
// its Strategy. Resumable(nil) is nil. The actor is responsible for pacing
// itself: resuming is immediate.
func Resumable(err error) error {
	if err == nil {
		return nil
	}
	return &resumableError{err}
}

// IsResumable reports whether err was wrapped with Resumable.
func IsResumable(err error) bool {
	var r *resumableError
	return errors.As(err, &r)
}

// PanicError is a recovered panic as an error.
type PanicError struct {
	Value any    // the value passed to panic
	Stack string // an excerpt of the stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Context is what a behaviour gets: its identity, logger, shutdown signals and
// persistent state. It is owned by the actor's goroutine; only Name may be
// called from elsewhere.
type Context struct {
	a *actor
}

// Name returns the actor's name.
func (c *Context) Name() string { return c.a.spec.Name }

// Logger returns the graph's logger with an "actor" attribute.
func (c *Context) Logger() *slog.Logger { return c.a.log }

// Done is closed when the graph aborts: the shutdown timeout passed after a
// stop was requested. Every blocking call must return when it fires. *Context
// is a Doner, so channel waits take the context itself:
// in.WaitAvailable(ctx, 1).
func (c *Context) Done() <-chan struct{} { return c.a.g.abort }

// Stopping is closed when a graceful stop begins (the context given to
// Graph.Start was cancelled, Graph.Stop was called, or an actor escalated).
// Sources must then stop producing and return; other actors keep draining
// their inputs until those are closed and empty. Use Signal(ctx.Stopping())
// where a Doner is needed.
func (c *Context) Stopping() <-chan struct{} { return c.a.g.stopping }

// IsStopping reports whether a graceful stop has begun.
func (c *Context) IsStopping() bool {
	select {
	case <-c.a.g.stopping:
		return true
	default:
		return false
	}
}

// State returns the actor's persistent state (the Spec's State pointer).
func (c *Context) State() any { return c.a.spec.State }

// Restarts returns how many times this actor has been restarted so far.
func (c *Context) Restarts() int {
	c.a.mu.Lock()
	defer c.a.mu.Unlock()
	return c.a.restarts
}

// Clock returns the graph's clock.
func (c *Context) Clock() Clock { return c.a.g.cfg.Clock }

// MarkDirty records that the actor changed its state since its last
// checkpoint; the next Checkpoint publishes it.
func (c *Context) MarkDirty() { c.a.dirty = true }

// Checkpoint declares a safe point: the state is consistent (every effect of
// the messages committed so far is in it and nothing is half done). If the
// state was marked dirty, Checkpoint serialises it with the graph's codec and
// publishes it; Graph.SnapshotStates returns the latest published bytes of a
// running actor. Cheap when nothing is dirty. It returns the codec's error,
// if any (the previous published state is then kept).
func (c *Context) Checkpoint() error {
	a := c.a
	if !a.dirty || a.spec.State == nil {
		return nil
	}
	b, err := a.g.cfg.Codec.Marshal(a.spec.State)
	if err != nil {
		a.log.Error("actors: checkpoint: marshal state", "err", err)
		return fmt.Errorf("actors: checkpoint %q: %w", a.spec.Name, err)
	}
	a.mu.Lock()
	a.published = b
	a.version++
	a.mu.Unlock()
	a.dirty = false
	return nil
}

// TakeDeadLetters returns the messages the supervisor moved from this actor's
// inputs to the dead letters since the last call, and forgets them. A
// restarted behaviour calls it to learn what it skipped, e.g. to tell the
// downstream that a sequence number was dead-lettered rather than lost. The
// graph's queue (Graph.DeadLetters) keeps them regardless.
func (c *Context) TakeDeadLetters() []DeadLetter {
	d := c.a.undelivered
	c.a.undelivered = nil
	return d
}

// failure is one crash of a behaviour.
type failure struct {
	panicked bool
	value    any       // panic value
	err      error     // returned error (or PanicError for panics)
	pcs      []uintptr // where it panicked
	stackStr string    // pcs formatted, once needed
	goexit   bool      // runtime.Goexit was called (e.g. t.FailNow)
}

// stack formats the panic's stack (once) and fills it into the PanicError.
func (f *failure) stack() string {
	if f.stackStr == "" && len(f.pcs) > 0 {
		f.stackStr = formatStack(f.pcs)
	}
	if pe, ok := f.err.(*PanicError); ok && pe.Stack == "" {
		pe.Stack = f.stackStr
	}
	return f.stackStr
}

// crashTrack counts consecutive crashes with the same head in flight.
type crashTrack struct {
	pos   uint64
	count int
}

// actor is one supervised actor.
type actor struct {
	g    *Graph
	spec Spec
	ctx  *Context
	log  *slog.Logger

	maxRestarts int
	window      time.Duration
	threshold   int

	mu        sync.Mutex // guards the fields below, and the state while not Running
	status    Status
	restarts  int
	resumes   int
	lastFail  string
	published []byte // last published serialised state
	version   uint64 // incremented on each publication

	// Actor-goroutine-only fields.
	dirty        bool
	final        Status
	consecutive  int         // consecutive failures, for backoff
	lastStart    time.Time   // when the behaviour was last (re)started
	restartTimes []time.Time // restarts within the window, oldest first
	crashes      map[Input]*crashTrack
	undelivered  []DeadLetter // dead letters not yet taken by TakeDeadLetters
}

// loop is the supervisor: it runs the behaviour, handles failures, and stops
// the actor for good.
func (a *actor) loop() {
	a.final = StatusFailed
	defer a.finish()
	for {
		a.setRunning()
		f := a.runOnce()
		if f == nil {
			a.final = StatusStopped
			return
		}
		if f.goexit {
			a.log.Error("actors: behaviour called runtime.Goexit; actor stopped")
			return
		}
		if a.aborted() {
			a.log.Warn("actors: actor failed during abort; not restarted", "err", f.err)
			return
		}
		if f.err != nil && !f.panicked && IsResumable(f.err) {
			a.mu.Lock()
			a.resumes++
			a.lastFail = f.err.Error()
			a.mu.Unlock()
			a.log.Warn("actors: actor resumed after resumable error", "err", f.err)
			continue
		}
		switch a.spec.Strategy {
		case Stop:
			a.recordFail(f)
			a.log.Error("actors: actor failed; strategy stop", "err", f.err, "stack", f.stack())
			return
		case Escalate:
			a.recordFail(f)
			f.stack()
			a.g.escalate(&EscalationError{Actor: a.spec.Name, Reason: "strategy escalate", Cause: f.err})
			return
		}
		if !a.restart(f) {
			return
		}
	}
}

// runOnce calls the behaviour once and turns a panic or error into a failure.
func (a *actor) runOnce() (f *failure) {
	normal := false
	defer func() {
		if normal {
			return
		}
		r := recover()
		if r == nil {
			f = &failure{goexit: true}
			return
		}
		// Capture program counters only (cheap); the stack is formatted
		// when a dead letter or an escalation needs it.
		pcs := make([]uintptr, 48)
		pcs = pcs[:runtime.Callers(1, pcs)]
		f = &failure{panicked: true, value: r, pcs: pcs, err: &PanicError{Value: r}}
	}()
	err := a.spec.Run(a.ctx)
	normal = true
	if err != nil {
		return &failure{err: err}
	}
	return nil
}

// restart applies the Restart directive. It returns false if the actor must
// stop instead (budget exceeded, or the graph aborted during backoff).
func (a *actor) restart(f *failure) bool {
	now := a.g.cfg.Clock.Now()
	a.recordFail(f)
	a.checkShowstoppers(f, now)

	// Restart budget: at most maxRestarts within the window.
	cut := now.Add(-a.window)
	i := 0
	for i < len(a.restartTimes) && !a.restartTimes[i].After(cut) {
		i++
	}
	a.restartTimes = a.restartTimes[i:]
	if len(a.restartTimes) >= a.maxRestarts {
		a.mu.Lock()
		n := a.restarts
		a.mu.Unlock()
		a.log.Error("actors: restart budget exceeded; escalating",
			"restarts", n, "max", a.maxRestarts, "window", a.window, "err", f.err)
		f.stack()
		a.g.escalate(&EscalationError{
			Actor: a.spec.Name, Restarts: n,
			Reason: fmt.Sprintf("more than %d restarts within %v", a.maxRestarts, a.window),
			Cause:  f.err,
		})
		return false
	}
	a.restartTimes = append(a.restartTimes, now)

	// Backoff: doubles per consecutive failure from BackoffMin up to
	// BackoffMax; an actor that ran longer than BackoffMax starts over.
	cfg := &a.g.cfg
	if now.Sub(a.lastStart) > cfg.BackoffMax {
		a.consecutive = 0
	}
	a.consecutive++
	d := cfg.BackoffMin
	for k := 1; k < a.consecutive && d > 0 && d < cfg.BackoffMax; k++ {
		d *= 2
	}
	d = min(d, cfg.BackoffMax)

	a.mu.Lock()
	a.status = StatusRestarting
	a.restarts++
	n := a.restarts
	a.mu.Unlock()
	a.log.Warn("actors: actor failed; restarting", "restart", n, "backoff_seconds", d.Seconds(), "err", f.err)

	if d > 0 {
		select {
		case <-cfg.Clock.After(d):
		case <-a.g.abort:
			return false
		}
	}
	return true
}

// checkShowstoppers counts, per input, consecutive crashes with the same
// head message in flight (peeked, not committed) and moves that message to
// the dead letters when the count reaches the threshold. Inputs whose
// in-flight batch held several messages are put in careful mode so the
// culprit ends up alone at the head.
func (a *actor) checkShowstoppers(f *failure, now time.Time) {
	for _, in := range a.spec.Inputs {
		pos, inFlight := in.inFlight()
		t := a.crashes[in]
		if t == nil {
			t = &crashTrack{}
			a.crashes[in] = t
		}
		if !inFlight {
			t.count = 0
			in.resetPeek()
			continue
		}
		if t.count > 0 && t.pos == pos {
			t.count++
		} else {
			t.pos, t.count = pos, 1
		}
		if t.count >= a.threshold {
			msg, ok := in.dropHead()
			if ok {
				d := DeadLetter{
					Actor: a.spec.Name, Channel: in.Name(), Pos: pos, Message: msg,
					Stack: f.stack(), Crashes: t.count, At: now,
				}
				if f.panicked {
					d.Panic = f.value
				} else {
					d.Err = f.err
				}
				a.g.dead.add(d, a.log)
				a.undelivered = append(a.undelivered, d)
			}
			t.count = 0
		} else {
			in.beCareful()
		}
		in.resetPeek()
	}
}

func (a *actor) recordFail(f *failure) {
	a.mu.Lock()
	a.lastFail = f.err.Error()
	a.mu.Unlock()
}

func (a *actor) aborted() bool {
	select {
	case <-a.g.abort:
		return true
	default:
		return false
	}
}

// setRunning publishes the state as it is now (the safe point at which a
// (re)started behaviour begins) and marks the actor running.
func (a *actor) setRunning() {
	var b []byte
	if a.spec.State != nil {
		var err error
		b, err = a.g.cfg.Codec.Marshal(a.spec.State)
		if err != nil {
			a.log.Error("actors: marshal state at start", "err", err)
			b = nil
		}
	}
	a.lastStart = a.g.cfg.Clock.Now()
	a.mu.Lock()
	if b != nil {
		a.published = b
		a.version++
	}
	a.status = StatusRunning
	a.mu.Unlock()
	a.dirty = false
}

// finish stops the actor for good: closes its outputs, detaches its inputs
// (their producers' sends now fail) and reports what was left unconsumed.
func (a *actor) finish() {
	for _, out := range a.spec.Outputs {
		out.Close()
	}
	for _, in := range a.spec.Inputs {
		in.detach()
		if n := in.Len(); n > 0 {
			a.log.Warn("actors: actor stopped with messages left in its input",
				"channel", in.Name(), "left", n)
		}
	}
	a.mu.Lock()
	a.status = a.final
	a.mu.Unlock()
	a.log.Debug("actors: actor stopped", "status", a.final)
	a.g.wg.Done()
}

// formatStack renders the frames from the panic site down to (not
// including) the supervisor, at most 2 KiB.
func formatStack(pcs []uintptr) string {
	frames := runtime.CallersFrames(pcs)
	var b strings.Builder
	seenPanic := false
	for {
		fr, more := frames.Next()
		switch {
		case !seenPanic:
			seenPanic = fr.Function == "runtime.gopanic"
		case strings.HasSuffix(fr.Function, "actors.(*actor).runOnce"):
			more = false
		default:
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", fr.Function, fr.File, fr.Line)
		}
		if !more || b.Len() >= 2048 {
			break
		}
	}
	if !seenPanic { // not a panic stack after all: keep everything
		return formatAll(pcs)
	}
	return b.String()
}

func formatAll(pcs []uintptr) string {
	frames := runtime.CallersFrames(pcs)
	var b strings.Builder
	for {
		fr, more := frames.Next()
		fmt.Fprintf(&b, "%s\n\t%s:%d\n", fr.Function, fr.File, fr.Line)
		if !more || b.Len() >= 2048 {
			return b.String()
		}
	}
}
