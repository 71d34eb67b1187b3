// Package pod wires steadfast's publisher and subscriber pods: flags and
// environment (ParseFlags), the actor graphs, the transport streams, cluster
// membership and snapshots, Prometheus metrics and the /metrics and /healthz
// HTTP server. The commands in cmd/publisher and cmd/subscriber are one call
// to Main.
//
// # Publisher pod
//
//	heartbeat ──beats──▶ generator ──ranges──▶ publish ──▶ transport (one publication per subscriber)
//	                                              ▲
//	                                   acks/hellos (AckStream on its own data endpoint)
//
// The heartbeat emits one beat per --rate until --beats; the generator turns
// the beats it finds waiting into ranges of the next --batch values each
// (value = seq: a replayable source, so only the range travels); the
// publishing actor appends them to the outbox (bounded by --outbox; when
// full it stops taking ranges, the channel fills and the generator and
// heartbeat wait: nothing is dropped).
//
// The actors are thin shells over pure delivery cores (pubcore.go,
// subcore.go): state machines that take the time and one event (values
// generated, an ack, a hello, a membership change, a durable snapshot, a
// tick) and return what to do (offer these values to that subscriber, send
// a hello, open a publication), with no socket, clock or goroutine inside.
// The seeded simulation in sim_test.go runs the same cores over a lossy
// network with crashes, replacements and zombies.
//
// PubCore keeps the outbox and a record per subscriber (epoch, acknowledged
// position, when it left), and one circuit breaker (actors.Breaker) per live
// subscriber. It sends whatever the outbox holds from a subscriber's cursor,
// up to 4096 values a message: at a low rate each beat goes out alone at
// once, and when the transport is busy the beats that piled up go out
// together (smart batching: it never waits to fill a message). The outbox
// releases a value once every recorded subscriber (at least
// --min-subscribers) acknowledged it. A subscriber gone from the live view
// longer than --subscriber-retention is retired (its record dropped), so it
// no longer holds the outbox; so is one gone longer than
// --subscriber-grace when the outbox is full and it alone holds it (every
// live subscriber acknowledged more): a scaled-down subscriber stalls the
// stream for at most the grace, a replaced one that returns within the
// grace loses nothing. One that comes back after being retired is told
// with a Released control which values are gone (reported as lost). After the last
// value an EndOfStream control follows, repeated until acknowledged (and
// again for any later hello).
//
// The publishing actor's state (outbox, subscriber records) is the
// publisher's source of truth in its snapshot; the generator's next seq and
// the heartbeat's beat count are derived from the outbox on restore, so a
// replacement regenerates exactly the values after its snapshot and the
// subscribers drop those they already have.
//
// # Checked before applied
//
// Every inbound message passes two gates before it changes any state: the
// data-plane authentication (authn.go: the one seam where messages are
// sealed on the way out and verified on the way in), then the core's own
// checks: the sender is a live member of the right role at exactly that
// epoch, and its sequence numbers are plausible (no seq 0, no wrap, no more
// values than a message can carry, nothing beyond the stream's end). Core
// rejects are counted in steadfast_core_rejects_total{reason}. A restored
// state is decoded into a fresh value and validated (Validate) before it is
// installed; a bad one fails the restore with ErrBadState, never a panic.
//
// # Subscriber pod
//
//	transport (DataStream) ──▶ receive ──segments──▶ worker (FizzBuzz) ──segments──▶ logger
//	                              │
//	                              └──▶ acks and hellos to each publisher (AckStream)
//
// Whole batches travel, not values: receive turns each accepted message into
// one segment (its values copied out of the transport's buffer into a pooled
// slice), the worker counts a segment's FizzBuzz categories at once
// (fizzbuzz.Counts), and the logger adds those counts to the tally. receive
// polls only as many messages as the items channel has room for, and SubCore
// takes values in two phases: OnBatch says what is new, the segment is
// handed on, and only then Advance moves the watermark, so a crash in
// between loses nothing. A batch that starts beyond the watermark (a gap:
// a message lost or only reordered) is held, a copy within a bounded reorder
// window, and handed on once the gap is filled; a gap that lasts
// HelloRetry makes the core send a hello (replay from the watermark), again
// every HelloRetry while it lasts. Held values are not taken in (not in the
// watermark, the state or the acks). The worker
// injects failures (--panic-every: at most one injected panic per segment;
// --showstopper); logger keeps the Tally, the subscriber's source of truth:
// its last seq per publisher is the core's watermark, restored from the
// snapshot. When the runtime moves a segment to the dead letters (a value
// that always crashes the worker), the worker sees the channel head pass it
// and sends the logger the segment's other values plus the one dead value.
//
// # Delivery latency
//
// steadfast_delivery_latency_seconds (subscribers) is the beat-to-logger
// latency: from the heartbeat's wake-up that emitted a beat, read on the
// publisher's clock, to the subscriber's logger applying the batch that
// carries the beat's values, read on the subscriber's clock; one sample
// per batch applied, for the batch's oldest value. The beat time travels:
// heartbeat → generator → the outbox, which keeps one beat mark per run of
// values with the same beat time (in the snapshot too) → the Beat field of
// each codec.Batch (its first value's beat) → the receive core, which
// judges it against its own clock (SubCore.CheckBeat: missing, more than a
// minute ahead or more than a day old, and the batch is delivered without
// a sample, counted in steadfast_delivery_latency_dropped_total{reason}) →
// the segment → the logger, which observes now - beat. Read it knowing:
//
//   - It includes the clock skew between the publisher's and the
//     subscriber's hosts (on one host it is exact). When the publisher's
//     clock is ahead the difference can be negative: it is observed as 0
//     and counted in steadfast_delivery_latency_clamped_total, so a rising
//     clamped count says the clocks disagree.
//   - Values held and replayed after a crash, a replacement or a
//     subscriber's outage keep their original beat time: their samples
//     include the whole wait (seconds, in the upper buckets). That is the
//     latency those values had; a run with kills has a long tail.
//   - Beat times are never later than the truth: when the outbox holds
//     more than 8192 heartbeat wake-ups, neighbouring marks merge into the
//     earlier time, and a batch whose first values the subscriber already
//     had is measured from that first value.
//   - Back-pressure: beats emitted while the outbox is full wait in the
//     channels and show the wait; beats that came due while the heartbeat
//     itself was blocked are stamped when it emits them.
//
// # Delivery guarantee
//
// Acks cover only positions inside a durable snapshot: the snapshot loop
// saves the graph's states through cluster.Save every --snapshot-interval (a
// subscriber, whose snapshot is only its tally, every 25 ms while values
// arrive, and back to back while thousands arrive (8192 since the last
// save, checked every 5 ms): a publisher can release its outbox only as
// fast as acks come, so throughput is bounded by about outbox capacity /
// ack interval), at once
// after a membership change (to re-replicate when a replica holder was
// replaced), and, when Save reports a replica acknowledged it, the
// watermarks the logger had at its last checkpoint before the snapshot was
// taken (the snapshot holds at least those) become what acks report. A subscriber with no live peer has no
// durable snapshot (cluster DurableAlone is off for subscribers) and acks
// nothing; its publishers keep their outboxes. Run at least two cluster
// members (a publisher counts: it holds its subscribers' replicas), as the
// runner and docker-compose do. A publisher breaker half-opens when its
// subscriber is alive again (new epoch, maybe new address), learns where to
// resume from the subscriber's first hello or ack, replays the outbox from
// there in order before live traffic, then closes.
//
// A subscriber whose every publisher's stream ended (at least
// --min-publishers, and every publisher in the live view) takes a final
// snapshot, waits until it is durable, sends its final acks, writes
// FinalStateFile (final-state.json: its tally, for the runner's closed-form
// check) into its data dir and exits 0. SIGTERM/SIGINT stop either pod
// gracefully: sources stop, channels drain, final snapshot, publications
// closed (the transport sends end of stream); a subscriber also writes
// final-state.json then, with complete=false.
//
// # HTTP
//
// /livez answers 200 while the process serves HTTP; /readyz (and /healthz,
// the same) 200 once the pod joined, restored and runs its actors, 503
// ("not ready: joining|restoring|stopping|fenced") otherwise; /status is the
// pod's view of the cluster as text or JSON (see http.go). /metrics serves the pod's own prometheus.Registry (no global
// registry): Go and process collectors (process_resident_memory_bytes, ...)
// and the steadfast_* metrics below, read at scrape time.
//
// # Metrics
//
// Both pods:
//
//   - steadfast_info{node_id,role} (gauge): Constant 1, labelled with the pod's node id and role.
//   - steadfast_build_info{version,goversion} (gauge): Constant 1, labelled with the pods' version (as --version prints it) and Go version.
//   - steadfast_up (gauge): 1 while the pod runs its actors (what /healthz reports).
//   - steadfast_epoch (gauge): This incarnation's epoch.
//   - steadfast_actor_restarts_total{actor} (counter): Restarts of an actor since the pod started.
//   - steadfast_actor_status{actor} (gauge): Actor status: 0 idle, 1 running, 2 restarting, 3 stopped, 4 failed.
//   - steadfast_channel_fill{channel} (gauge): Messages in an actor channel.
//   - steadfast_channel_capacity{channel} (gauge): Capacity of an actor channel.
//   - steadfast_channel_sent_total{channel} (counter): Messages ever sent into an actor channel.
//   - steadfast_dead_letters_total (counter): Messages moved to the dead-letter queue (showstoppers).
//   - steadfast_dead_letters_evicted_total (counter): Dead letters evicted from the full queue (still counted above).
//   - steadfast_membership_members (gauge): Live members in this node's view, itself included.
//   - steadfast_membership_fenced_total (counter): Incarnations fenced by a higher epoch.
//   - steadfast_epoch_rejects_total (counter): Messages rejected because they came from a lower epoch of their node id.
//   - steadfast_snapshot_replicas_received_total (counter): Peer snapshots accepted as replicas.
//   - steadfast_snapshot_replica_rejects_total{reason} (counter): Peer snapshot pushes rejected, by reason.
//   - steadfast_replicas_held (gauge): Node ids this node holds a replica snapshot for.
//   - steadfast_replica_bytes (gauge): Total size of the replicas held.
//   - steadfast_replication_round_trip_seconds (histogram): Snapshot pushes from request to a peer's acknowledgement.
//   - steadfast_restore_source{source} (gauge): 1 for where this incarnation's state came from: local, peer:<id> or none.
//   - steadfast_restore_snapshot_epoch (gauge): Epoch of the restored snapshot.
//   - steadfast_restore_snapshot_version (gauge): Version of the restored snapshot.
//   - steadfast_restore_seconds (histogram): Cluster starts (join, gather, restore): one per incarnation.
//   - steadfast_snapshot_version (gauge): Version of the last snapshot taken by this incarnation.
//   - steadfast_snapshot_bytes (gauge): Size of the last snapshot's actor states.
//   - steadfast_snapshot_duration_seconds (histogram): Snapshot saves (local write + first replica ack), durable or not.
//   - steadfast_snapshots_saved_total (counter): Snapshots written locally.
//   - steadfast_snapshots_durable_total (counter): Snapshots reported durable (local + replica).
//   - steadfast_snapshot_failures_total (counter): Snapshots that failed or were not durable.
//   - steadfast_transport_frames_sent_total (counter): Transport DATA/PAD frames sent (retransmissions included).
//   - steadfast_transport_bytes_sent_total (counter): Transport data bytes sent.
//   - steadfast_transport_frames_received_total (counter): Transport data frames received.
//   - steadfast_transport_bytes_received_total (counter): Transport data bytes received.
//   - steadfast_transport_naks_sent_total (counter): NAKs sent.
//   - steadfast_transport_naks_received_total (counter): NAKs received.
//   - steadfast_transport_retransmits_total (counter): Retransmitted datagrams.
//   - steadfast_transport_back_pressure_total (counter): Offers refused with back pressure.
//   - steadfast_transport_setups_sent_total (counter): SETUP frames sent.
//   - steadfast_transport_status_messages_received_total (counter): Status messages received.
//   - steadfast_transport_heartbeats_sent_total (counter): Transport heartbeats sent.
//   - steadfast_transport_unknown_stream_total (counter): Datagrams for streams nobody subscribed to.
//   - steadfast_transport_invalid_datagrams_total{reason} (counter): Malformed datagrams dropped, by reason.
//   - steadfast_transport_images (gauge): Current transport images (publishing sessions received).
//   - steadfast_transport_publications (gauge): Current transport publications.
//   - steadfast_transport_pending_images (gauge): Sessions that sent a SETUP but no frame yet (no log memory).
//   - steadfast_transport_rejected_setups_total (counter): SETUPs refused (invalid, term too large, or a limit reached).
//   - steadfast_transport_evicted_images_total (counter): Images evicted to make room for new sessions.
//   - steadfast_transport_receive_buffer_bytes (gauge): Log memory the current images hold.
//   - steadfast_transport_socket_errors_total (counter): Socket reads that failed (not timeouts).
//   - steadfast_transport_send_errors_total (counter): Datagrams a socket refused to send.
//   - steadfast_media_driver_attached (gauge): With --aeron-dir: 1 while the pod is attached to a live media driver, 0 while the driver is lost.
//   - steadfast_media_driver_losses_total (counter): With --aeron-dir: times the media driver was lost (its heartbeat stopped or it shut down).
//   - steadfast_media_driver_reattaches_total (counter): With --aeron-dir: times the pod attached again to a media driver after a loss.
//   - steadfast_data_authenticated (gauge): 1 when data-plane messages are authenticated with the cluster key, 0 when the pod runs --insecure.
//   - steadfast_data_rejected_total{reason} (counter): Data-plane messages dropped before they could change state: unknown_sender (not a live member with that role and epoch) or unauthenticated (no trailer, bad tag or replay).
//   - steadfast_data_auth_verified_total (counter): Data-plane messages whose tag verified.
//   - steadfast_data_auth_rejects_total{reason} (counter): Data-plane messages whose authentication failed: short, bad_tag, replay, stale_epoch, bad_peer, too_many_senders.
//
// Publisher pod:
//
//   - steadfast_publisher_end_seq (gauge): Values in the whole stream (BEATS×BATCH); 0 when unbounded.
//   - steadfast_publisher_last_seq (gauge): Last seq generated into the outbox (values generated over all incarnations).
//   - steadfast_values_generated_total (counter): Values generated by this incarnation.
//   - steadfast_outbox_values (gauge): Values in the outbox (not yet acknowledged by every subscriber).
//   - steadfast_outbox_capacity (gauge): Outbox capacity in values.
//   - steadfast_outbox_first_seq (gauge): Oldest seq held in the outbox.
//   - steadfast_outbox_full (gauge): 1 while the outbox is full and the generator is back-pressured.
//   - steadfast_outbox_full_total (counter): Times the outbox became full (the generator back-pressured).
//   - steadfast_publisher_complete (gauge): 1 when every subscriber acknowledged the whole stream.
//   - steadfast_acks_received_total (counter): Acks received from subscribers.
//   - steadfast_hellos_received_total (counter): Hellos (replay requests) received from subscribers.
//   - steadfast_core_rejects_total{reason} (counter): Inbound messages the delivery core refused before they changed any state, by reason (unknown-sender, stale-epoch, future-epoch, implausible).
//   - steadfast_subscribers_retired_total (counter): Subscribers retired after being gone longer than --subscriber-retention, or early (they no longer hold the outbox).
//   - steadfast_subscribers_retired_early_total (counter): Subscribers retired early: the outbox was full and only they, gone longer than --subscriber-grace, held it (values they had not acknowledged are released; a scaled-down subscriber).
//   - steadfast_control_rejected_total (counter): Ack-stream messages rejected: undecodable or from a stale epoch.
//   - steadfast_breaker_state{subscriber} (gauge): Circuit breaker per subscriber: 0 closed, 1 open, 2 half-open, 3 draining.
//   - steadfast_breaker_opens_total{subscriber} (counter): Times the breaker opened.
//   - steadfast_subscriber_acked_seq{subscriber} (gauge): Highest seq the subscriber acknowledged (durable on its side).
//   - steadfast_subscriber_epoch{subscriber} (gauge): Highest epoch heard from the subscriber.
//   - steadfast_values_sent_total{subscriber} (counter): Values offered to a subscriber (replays included) by this incarnation.
//   - steadfast_values_replayed_total{subscriber} (counter): Values offered again to a subscriber (replays) by this incarnation.
//
// Subscriber pod (the logger gauges carry the tally: with
// steadfast_logger_values, _applied_values, _plain_values_summed, _first_seq,
// _last_seq and _end_seq a script can check the closed-form invariant from
// /metrics alone):
//
//   - steadfast_values_received_total (counter): Values taken into the pipeline (new, in order).
//   - steadfast_values_processed_total (counter): Values through the FizzBuzz worker.
//   - steadfast_duplicates_dropped_total (counter): Values dropped at or below the dedup watermark.
//   - steadfast_stale_epoch_dropped_total (counter): Values and controls dropped from a stale publisher epoch.
//   - steadfast_gaps_total (counter): Batches that started beyond the watermark (held until the gap is filled, within the reorder window; a replay is requested if the gap lasts).
//   - steadfast_bad_messages_total (counter): Undecodable data-stream messages.
//   - steadfast_worker_injected_panics_total (counter): Panics injected by --panic-every.
//   - steadfast_core_rejects_total{reason} (counter): the same for the subscriber's core.
//   - steadfast_delivery_latency_seconds (histogram): Beat to logger, one sample per batch applied (see Delivery latency); buckets 50 µs to 30 s.
//   - steadfast_delivery_latency_dropped_total{reason} (counter): Batches applied without a latency sample because their beat time was missing or implausible, by reason (missing, future, too-old).
//   - steadfast_delivery_latency_clamped_total (counter): Latency samples clamped to 0 because the publisher's clock was ahead of this pod's.
//   - steadfast_acks_sent_total (counter): Acks sent to publishers.
//   - steadfast_hellos_sent_total (counter): Hellos (replay requests) sent to publishers.
//   - steadfast_subscriber_done (gauge): 1 once every publisher's stream is complete.
//   - steadfast_committed_seq{publisher} (gauge): Last seq per publisher inside a durable snapshot (what acks report).
//   - steadfast_logger_values{publisher,category} (gauge): Logger count per publisher and FizzBuzz category (restored across incarnations).
//   - steadfast_logger_applied_values{publisher} (gauge): Values applied by the logger per publisher.
//   - steadfast_logger_plain_values_summed{publisher} (gauge): Sum of the plain (non-Fizz/Buzz) values per publisher.
//   - steadfast_logger_first_seq{publisher} (gauge): First seq the logger applied per publisher (1 for a complete stream).
//   - steadfast_logger_last_seq{publisher} (gauge): Last seq applied or dead-lettered per publisher.
//   - steadfast_logger_end_seq{publisher} (gauge): The publisher's end of stream (0 until it ended).
//   - steadfast_logger_dead_lettered{publisher} (gauge): Values dead-lettered by the worker per publisher.
//   - steadfast_logger_lost_values{publisher} (gauge): Values the publisher no longer had for this subscriber (lost).
//   - steadfast_logger_out_of_order{publisher} (gauge): Values applied out of sequence order (0 when correct).
package pod
