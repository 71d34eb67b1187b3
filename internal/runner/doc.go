// Package runner is the logic of cmd/runner: it builds the pods (or uses
// --bin-dir), runs publishers and subscribers as local processes on
// 127.0.0.1 with distinct node ids, ports and data dirs (a random cluster
// key per run), shows a live status line from the pods' /metrics, injects
// faults, and checks the outcome.
//
//	go run ./cmd/runner                                   # 1 publisher, 1 subscriber, 64,000 values
//	go run ./cmd/runner --publishers 2 --subscribers 2
//	go run ./cmd/runner --kill any --kill-every 2s --kills 5 --report run.json
//	go run ./cmd/runner --panic-every 500 --showstopper 4321
//
// Fault injection: --kill subscriber|publisher|any|alternate SIGKILLs one
// live pod every --kill-every (at most --kills times, one at a time, each
// after every pod is up again, and never after a stream has ended) and
// starts a replacement with the same node id, new ports and an empty data
// dir, as a new container would (--down-for keeps it down a while first).
// --zombie freezes the victim (SIGSTOP) instead, starts the replacement, and
// resumes the stale incarnation 2 s later: it must learn of the higher epoch
// of its node id and stop itself (zombies_fenced in the report), and nothing
// it sends may be applied. --panic-every and --showstopper are passed to the
// subscribers' workers.
//
// The run ends when every subscriber has exited 0 (it does so once every
// publisher's stream is delivered and its final snapshot is durable); the
// publishers are then stopped with SIGTERM. Ctrl-C stops every pod
// gracefully (subscribers first) and reports what was delivered so far.
//
// Verdict: each subscriber leaves pod.FinalStateFile in its data dir; the
// runner checks every (subscriber, publisher) tally against the closed form
// for N = beats × batch values with pod.Check, so lost and duplicated come
// from the applied counts, category counts and plain-value sum, not from
// counters the pods assert. A dead letter is allowed only for the
// --showstopper value. The process exits 0 only if the report is ok.
//
// The JSON report (--report) has ok, published, delivered, lost,
// duplicated, dead_letters, kills, replacements, restarts,
// values_per_second, elapsed_seconds, delivery_values_per_second,
// kill_to_delivering_seconds, outbox_full_seen, per pod (node id, role,
// incarnations, epochs, restore sources, restarts, exit codes, peak RSS)
// and per (subscriber, publisher) check.
package runner
