// Package actors is steadfast's actor runtime: supervised actors with
// persistent state, connected by bounded peek-before-commit channels, with
// showstopper detection, dead letters and graceful shutdown. It knows nothing
// of networks; pods wire transports to actors.
//
// # Building and running a graph
//
// A Graph holds actors (Spec: a name, a Behavior function, an optional state
// pointer, its input and output channels) and the channels between them:
//
//	g, _ := actors.NewGraph(actors.Config{Logger: log})
//	nums := actors.NewChan[uint64]("nums", 1024)
//	g.Add(actors.Spec{Name: "gen", Run: gen, State: &GenState{}, Outputs: []actors.Port{nums}})
//	g.Add(actors.Spec{Name: "sum", Run: sum, State: &SumState{}, Inputs: []actors.Input{nums}})
//	g.RestoreStates(snapshot)      // optional, before Start
//	err := g.Run(ctx)             // cancel ctx (SIGINT/SIGTERM) to stop gracefully
//
// Each actor runs on its own goroutine under a supervisor. A Behavior returns
// nil when the actor is done; the supervisor then closes its outputs.
//
// # Supervision
//
// A panic or a returned error is a failure. Errors wrapped with Resumable make
// the supervisor Resume: call the behaviour again at once, nothing counted
// but Resumes. Otherwise the Spec's Strategy applies: Restart (the default)
// calls the behaviour again after a backoff (Config.BackoffMin, doubling per
// consecutive failure up to BackoffMax, timed by Config.Clock); Stop ends the
// actor; Escalate stops the graph. A Restart beyond the budget
// (Config.MaxRestarts within Config.RestartWindow) escalates instead: the
// graph stops gracefully and Wait returns an *EscalationError naming the
// actor and the last failure. Restart counts are in Stats and ctx.Restarts().
//
// A restarted behaviour runs on the same goroutine, with the same Context,
// state pointer and channels, so it stays the only producer or consumer of
// its channels.
//
// # Channels
//
// Chan[T] is a bounded single-producer/single-consumer ring (capacity a power
// of two) with lock-free head and tail positions on separate cache lines.
// Producers use TrySend, SendBatch (non-blocking), Send and SendAll (wait for
// room) and WaitVacant; consumers use TryPeek, PeekBatch, Commit, TryTake,
// TakeBatch and WaitAvailable. Waits park on a capacity-1 wake channel (no
// spinning) and return false when their Doner fires: pass the actor's *Context
// (fires on abort) or Signal(ctx.Stopping()) (fires when a graceful stop
// begins). The producer closes a channel; the consumer drains it and then sees
// IsClosedAndEmpty (WaitAvailable returns false).
//
// # Peek before commit, and exactly once
//
// TryPeek and PeekBatch leave messages in the channel; Commit removes them. A
// consumer that crashes before committing finds the same messages at the head
// when restarted: nothing is lost. The rule that also keeps the downstream
// free of duplicates:
//
//   - The effect of an input message and its commit happen in one runtime
//     step. Forward(ctx, in, n, out, outputs) publishes the outputs and
//     commits n inputs with no user code in between, so a crash happens either
//     before (nothing sent, inputs still at the head) or after (sent and
//     committed). This is the preferred way.
//   - An actor that must commit separately uses out.SendFor(ctx, in, n,
//     outputs), which publishes the outputs and marks the first n inputs as
//     forwarded in one step, then in.Commit(n). If it crashes in between, the
//     restarted actor sees in.Forwarded() > 0 and commits that many inputs
//     without sending again.
//   - An effect that is not a channel send (updating its own state, e.g. a
//     counter) is recorded together with the input's position in the same
//     state: apply the message at position in.HeadPos()+i and set
//     state.NextPos = in.HeadPos()+i+1 in the same step; after a restart skip
//     (just commit) messages below state.NextPos. Positions start at 0 in
//     each new channel, so leave NextPos out of snapshots (or reset it on
//     restore); across processes, dedup by a sequence number carried in the
//     message instead (as the robust pipeline's logger does).
//
// Plain Send followed by Commit gives at-least-once: a crash between them
// duplicates the output.
//
// # Showstoppers and dead letters
//
// When an actor fails, the supervisor looks at each of its inputs: if the head
// message had been peeked and not committed, it is "in flight". A message in
// flight through Config.ShowstopperThreshold (N, default 3) consecutive
// crashes of its consumer is a showstopper: the supervisor removes it and adds
// a DeadLetter (actor, channel, position, message, panic value or error, stack
// excerpt) to the graph's bounded dead-letter queue, logs it and counts it;
// the restarted consumer continues with the next message (and can learn what
// was skipped from ctx.TakeDeadLetters). When the queue is
// full the oldest entry is evicted and counted (Stats.DeadLettersEvicted).
//
// A consumer that peeked a batch and crashed could have been crashed by any
// message of the batch, so after such a crash its PeekBatch returns one
// message at a time until the head has moved past the batch: the culprit then
// crashes the consumer alone at the head and is counted from there (it may
// thus crash the consumer N+1 times in all).
//
// # Persistent state and snapshots
//
// The state pointer in Spec.State belongs to the supervisor and outlives
// restarts: counters continue where they were. The actor mutates it only on
// its own goroutine. The contract for snapshots:
//
//   - After changing its state, an actor calls ctx.MarkDirty() and, once the
//     state is consistent (every effect of the messages committed so far is
//     in it, nothing half done), ctx.Checkpoint(). Checkpoint serialises a
//     dirty state with Config.Codec and publishes it; it is cheap when nothing
//     is dirty. Between messages or batches is the natural place.
//   - Graph.SnapshotStates() returns, for every stateful actor, the latest
//     published state of a running actor, or the live state of an actor that
//     is not inside its behaviour (not started, restarting, stopped),
//     serialised under the actor's lock. It never touches a running actor's
//     state, so it is race-free, and each actor's bytes come from one safe
//     point. Fields that must be consistent with each other (the logger's
//     counters and the committed watermark they cover) belong in one actor's
//     state value.
//   - Graph.RestoreStates(states) decodes such a map into the states before
//     Start. A final snapshot after Wait returns sees every actor's last state.
//
// StateCodec is the serialisation seam: JSONCodec here, msgpack in the pods.
//
// # Graceful shutdown
//
// Cancelling the context given to Start, calling Stop, or an escalation begins
// a graceful stop: ctx.Stopping() closes. Sources (actors without inputs, or
// that poll something outside the graph) must return promptly; every other
// actor drains its inputs until they are closed and empty, and returns; the
// supervisor closes each stopped actor's outputs, so the stop flows down the
// pipeline. Wait returns when every actor has stopped. If that takes longer
// than Config.ShutdownTimeout the graph aborts (every ctx.Done() closes, so
// blocking channel calls return false) and Wait returns a
// *ShutdownTimeoutError naming the actors that were still busy. When an actor
// stops for good its inputs are detached: their producers' sends fail instead
// of blocking forever.
//
// # Stats
//
// Graph.Stats reports per actor its status (idle, running, restarting,
// stopped, failed), restarts, resumes and last failure; per channel its fill,
// capacity and sent/taken totals; and the dead-letter totals. It is safe to
// call at any time; pods export it as Prometheus metrics.
package actors
