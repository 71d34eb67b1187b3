// Package runner is the logic of cmd/runner: it builds the pods (or uses
// --bin-dir), runs publishers and subscribers as local processes on
// 127.0.0.1 with distinct node ids, ports and data dirs (a random cluster
// key per run), shows a live status line from the pods' /metrics, injects
// faults, and checks the outcome. It prints each pod's /status and /metrics
// URLs as it starts them; its status line and its log lines share one
// writer (Console), and the last status line shows the summary's numbers.
//
//	go run ./cmd/runner                                   # 1 publisher, 1 subscriber, 64,000 values
//	go run ./cmd/runner --publishers 2 --subscribers 2
//	go run ./cmd/runner --kill any --kill-every 2s --kills 5 --report /tmp/run.json --report /tmp/run.svg
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
// With --media-driver local the media driver process is one more victim:
// --kill driver SIGKILLs it every --kill-every (--kill any picks among the
// pods and the driver). The pods stay up: they notice the silent driver
// after --driver-timeout, report it (/status media_driver) and wait; the
// runner starts a new driver on the same directory once the dead one's
// heartbeat is --driver-timeout old (a younger one would be refused as a
// live driver's; it retries if refused), and the pods reattach to it by
// themselves (internal/pod/aeron.go says why they do not restart). The
// report counts driver kills apart and times each from the kill to the
// subscribers delivering again. A local driver that stops without being
// killed by the runner fails the run at once (a problem naming it).
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
// The pods die with the runner however it dies (a parent-death signal on
// Linux; elsewhere they stay in its process group). What the runner knows
// of a pod comes from its /status (phase, epoch, restore source, stream
// positions), its /metrics (restarts, RSS, counters, read with
// prometheus/common/expfmt) and its exit status (pod.ExitFenced,
// pod.ExitAddrInUse), never from its log text.
//
// Reports: by default run-<start time>.json and .svg in DefaultReportDir
// (the user's cache dir, never the current directory); --report FILE
// (repeatable; .svg for plots) chooses, --report none turns them off. The
// exit status is 1 when a report cannot be written. The SVG plots
// throughput over time with the kills marked, kill → delivering times and
// the subscribers' beat-to-logger latency histogram with its p50 and p99
// marked (the summary prints them too; estimated from the buckets as
// Prometheus's histogram_quantile does). The JSON report has version,
// start_time, config (the flags), warnings (e.g. fewer kills than asked
// because the streams ended first), timeline, kill_times, ok, published, delivered, lost,
// duplicated, dead_letters, kills, replacements, restarts,
// values_per_second, elapsed_seconds, delivery_values_per_second,
// kill_to_delivering_seconds, outbox_full_seen, latency_seconds and
// replication_round_trip_seconds (buckets, count, sum, p50, p99), per pod (node id, role,
// incarnations, epochs, restore sources, restarts, exit codes, peak RSS,
// CPU seconds)
// and per (subscriber, publisher) check (with the dead-lettered values);
// work_dir only if the pods' data dirs and logs were kept (a failed run or
// --work-dir).
package runner
