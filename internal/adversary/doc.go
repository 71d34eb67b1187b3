// Package adversary holds tests that attack live pods the way a hostile
// sender on the same host would: the pod binaries run as real processes on
// 127.0.0.1 (started as the README starts them, with or without a cluster
// key), and the attacker is a program built from the project's own packages
// (codec, transport, internal/auth) that opens its own transport sessions to
// the pods' data endpoints. Every test asserts the outcome that matters: the
// forged message changed no state (no skipped values, no adopted epoch, no
// released outbox), it was counted, the pod stayed up, and the stream still
// ended exactly once.
//
// The package has no non-test code besides this comment.
//
// Attacks of issue 14 and where their tests are:
//
//   - Data plane (§1), here: a forged hello with a huge seq to a subscriber
//     and to a publisher, a forged batch with a high epoch, a forged ack with
//     a huge watermark, a message from an unknown node, garbage, and (with a
//     key) a message sealed with the real key but an old counter (a replay);
//     with a key and with --insecure (where only the membership check
//     applies: a sender must be a live member with that role and exact
//     epoch). Also in-process: internal/pod TestDataPlaneAttacksInProcess.
//   - Secure by default (§6): here, a pod without a key refuses to start
//     (exit 2) unless --insecure; internal/pod TestSecureByDefault.
//   - Crash exit status (§7): internal/pod TestCrashExitStatus.
//   - Rogue member (§2, with a key): here, TestRogueMemberWithoutKey — a
//     process joining as subscriber-1 without the key (or with another)
//     cannot join; nothing is fenced and the stream ends exactly once.
//   - Forged snapshot pushes that fence or climb out of the data dir,
//     gather reflection, epoch wrap (§2): cluster/attack_test.go against real
//     memberlist nodes (TestAttackForgedPushDoesNotFence,
//     TestAttackPushCannotWriteOutsideDataDir, TestAttackEpochCannotWrap,
//     TestAttackGatherNoReflectionNoLeak); node-id validation in nodeid;
//     restore panics (§3): internal/pod's restore fuzzers, and
//     internal/pod TestPoisonedLocalSnapshotRefused (both poisoned states
//     in the pods' own snapshot files: refused by the pods' check, counted,
//     the stream exactly once).
//   - SETUP flood (§4): here, TestSetupFloodAtLivePods — 64 fake sessions
//     announcing 64 MiB terms flood the subscriber while the publisher is
//     SIGKILLed and replaced; the stream ends exactly once, memory stays
//     bounded. The transport's own test: transport/flood_test.go.
//   - HTTP limits (§5): internal/pod's HTTP tests (ops engineer).
//   - The transport's unauthenticated control frames, here:
//     TestForgedStatusMessages (status messages claiming a position past
//     anything sent, from a receiver that does not exist, while the
//     subscriber is stopped: refused and counted, the stream ends exactly
//     once; before, the sender believed them and the stream stalled) and
//     TestForgedNAKStorm (NAKs with the term id read off the wire:
//     retransmissions to the subscriber only, the stream ends exactly once;
//     skipped where a packet socket cannot be opened).
package adversary
