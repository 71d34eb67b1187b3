package pod

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/transport"
)

// registerMetrics registers the pod's collector and the Go/process
// collectors (process_resident_memory_bytes, ...) on the pod's own registry.
func (p *Pod) registerMetrics() {
	p.hist = podHistograms{
		snapshotSave: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "steadfast_snapshot_duration_seconds",
			Help: "Snapshot saves (local write + first replica ack), durable or not.", Buckets: durationBuckets}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "steadfast_restore_seconds",
			Help: "Cluster starts (join, gather, restore): one per incarnation.", Buckets: durationBuckets}),
	}
	p.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&podCollector{p: p},
		p.hist.snapshotSave, p.hist.restore,
	)
	if p.subSide != nil {
		p.hist.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "steadfast_delivery_latency_seconds",
			Help:    "Beat to logger: from the publisher's heartbeat emitting a batch's first value (publisher's clock) to this subscriber's logger applying the batch (this pod's clock); one sample per batch. Includes the clock skew between hosts (negative latencies count as 0) and the whole hold of values replayed after a crash or replacement.",
			Buckets: latencyBuckets})
		p.reg.MustRegister(p.hist.latency)
	}
}

// podHistograms are observed by the pod as things happen (seconds).
type podHistograms struct {
	snapshotSave, restore prometheus.Histogram
	latency               prometheus.Histogram // subscribers only
}

// latencyBuckets are the upper bounds (seconds) of the delivery latency
// histogram: 50 µs to 30 s in 1-2-5 steps (a batch through the pipeline
// on one host takes tens of microseconds; a replay after a kill, seconds).
var latencyBuckets = []float64{50e-6, 100e-6, 200e-6, 500e-6, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 20, 30}

// durationBuckets are the upper bounds (seconds) of the duration
// histograms: 0.5 ms to 30 s.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// histogram emits a cluster histogram snapshot.
func (e emitter) histogram(name, help string, h cluster.Histogram) {
	m, err := prometheus.NewConstHistogram(prometheus.NewDesc(name, help, nil, nil), h.Count, h.Sum, h.Buckets)
	if err == nil {
		e.ch <- m
	}
}

// podCollector reads every steadfast_* metric at scrape time from the
// runtime's, the cluster's, the transport's and the pod's own counters.
// Names and labels are documented in doc.go.
type podCollector struct{ p *Pod }

var _ prometheus.Collector = (*podCollector)(nil)

// Describe sends nothing: the collector is unchecked (its label values,
// e.g. actor and subscriber names, are only known at scrape time).
func (c *podCollector) Describe(chan<- *prometheus.Desc) {}

type emitter struct {
	ch chan<- prometheus.Metric
}

func (e emitter) emit(name, help string, t prometheus.ValueType, v float64, labels ...string) {
	var keys, vals []string
	for i := 0; i+1 < len(labels); i += 2 {
		keys = append(keys, labels[i])
		vals = append(vals, labels[i+1])
	}
	d := prometheus.NewDesc(name, help, keys, nil)
	m, err := prometheus.NewConstMetric(d, t, v, vals...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err) // the scrape reports it
	}
	e.ch <- m
}

func (e emitter) gauge(name, help string, v float64, labels ...string) {
	e.emit(name, help, prometheus.GaugeValue, v, labels...)
}

func (e emitter) counter(name, help string, v float64, labels ...string) {
	e.emit(name, help, prometheus.CounterValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *podCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	e := emitter{ch}
	run := p.running.Load()
	if run == nil {
		run = &runningPod{}
	}
	e.gauge("steadfast_info", "Constant 1, labelled with the pod's node id and role.", 1, "node_id", p.id, "role", p.cfg.Role.String())
	e.gauge("steadfast_up", "1 while the pod runs its actors (what /healthz reports).", b2f(p.ready.Load()))
	e.gauge("steadfast_epoch", "This incarnation's epoch.", float64(p.epoch.Load()))

	// Actors.
	if g := run.graph; g != nil {
		st := g.Stats()
		for _, a := range st.Actors {
			e.counter("steadfast_actor_restarts_total", "Restarts of an actor since the pod started.", float64(a.Restarts), "actor", a.Name)
			e.gauge("steadfast_actor_status", "Actor status: 0 idle, 1 running, 2 restarting, 3 stopped, 4 failed.", float64(a.Status), "actor", a.Name)
		}
		for _, ch := range st.Channels {
			e.gauge("steadfast_channel_fill", "Messages in an actor channel.", float64(ch.Len), "channel", ch.Name)
			e.gauge("steadfast_channel_capacity", "Capacity of an actor channel.", float64(ch.Cap), "channel", ch.Name)
			e.counter("steadfast_channel_sent_total", "Messages ever sent into an actor channel.", float64(ch.Sent), "channel", ch.Name)
		}
		e.counter("steadfast_dead_letters_total", "Messages moved to the dead-letter queue (showstoppers).", float64(st.DeadLetters))
		e.counter("steadfast_dead_letters_evicted_total", "Dead letters evicted from the full queue (still counted above).", float64(st.DeadLettersEvicted))
	}

	// Membership and snapshots.
	if cl := p.clus; cl != nil {
		cs := cl.Stats()
		e.gauge("steadfast_membership_members", "Live members in this node's view, itself included.", float64(cs.Members))
		e.counter("steadfast_membership_fenced_total", "Incarnations fenced by a higher epoch.", float64(cs.FencedMembers))
		e.counter("steadfast_epoch_rejects_total", "Messages rejected because they came from a lower epoch of their node id.", float64(cs.EpochRejects))
		e.counter("steadfast_snapshot_replicas_received_total", "Peer snapshots accepted as replicas.", float64(cs.SnapshotsReceived))
		for reason, n := range cs.SnapshotRejects {
			e.counter("steadfast_snapshot_replica_rejects_total", "Peer snapshot pushes rejected, by reason.", float64(n), "reason", reason)
		}
		e.gauge("steadfast_replicas_held", "Node ids this node holds a replica snapshot for.", float64(cs.ReplicasHeld))
		e.gauge("steadfast_replica_bytes", "Total size of the replicas held.", float64(cs.ReplicaBytes))
		e.histogram("steadfast_replication_round_trip_seconds", "Snapshot pushes from request to a peer's acknowledgement.", cl.ReplicationRoundTrips())
	}
	if b := run.boot; b != nil {
		e.gauge("steadfast_restore_source", "1 for where this incarnation's state came from: local, peer:<id> or none.", 1, "source", b.Source)
		if b.Snapshot != nil {
			e.gauge("steadfast_restore_snapshot_epoch", "Epoch of the restored snapshot.", float64(b.Snapshot.Epoch))
			e.gauge("steadfast_restore_snapshot_version", "Version of the restored snapshot.", float64(b.Snapshot.Version))
		}
	}
	e.gauge("steadfast_snapshot_version", "Version of the last snapshot taken by this incarnation.", float64(p.snapStat.version.Load()))
	e.gauge("steadfast_snapshot_bytes", "Size of the last snapshot's actor states.", float64(p.snapStat.bytes.Load()))
	e.counter("steadfast_snapshots_saved_total", "Snapshots written locally.", float64(p.snapStat.saved.Load()))
	e.counter("steadfast_snapshots_durable_total", "Snapshots reported durable (local + replica).", float64(p.snapStat.durable.Load()))
	e.counter("steadfast_snapshot_failures_total", "Snapshots that failed or were not durable.", float64(p.snapStat.failures.Load()))

	// Transport.
	if d := p.driver; d != nil {
		ds := d.Stats()
		e.counter("steadfast_transport_frames_sent_total", "Transport DATA/PAD frames sent (retransmissions included).", float64(ds.FramesSent))
		e.counter("steadfast_transport_bytes_sent_total", "Transport data bytes sent.", float64(ds.BytesSent))
		e.counter("steadfast_transport_frames_received_total", "Transport data frames received.", float64(ds.FramesReceived))
		e.counter("steadfast_transport_bytes_received_total", "Transport data bytes received.", float64(ds.BytesReceived))
		e.counter("steadfast_transport_naks_sent_total", "NAKs sent.", float64(ds.NAKsSent))
		e.counter("steadfast_transport_naks_received_total", "NAKs received.", float64(ds.NAKsReceived))
		e.counter("steadfast_transport_retransmits_total", "Retransmitted datagrams.", float64(ds.Retransmits))
		e.counter("steadfast_transport_back_pressure_total", "Offers refused with back pressure.", float64(ds.BackPressure))
		e.counter("steadfast_transport_setups_sent_total", "SETUP frames sent.", float64(ds.SetupsSent))
		e.counter("steadfast_transport_status_messages_received_total", "Status messages received.", float64(ds.SMsReceived))
		e.counter("steadfast_transport_heartbeats_sent_total", "Transport heartbeats sent.", float64(ds.HeartbeatsSent))
		e.counter("steadfast_transport_unknown_stream_total", "Datagrams for streams nobody subscribed to.", float64(ds.UnknownStream))
		for _, reason := range transport.InvalidDatagramReasons { // each from the start
			e.counter("steadfast_transport_invalid_datagrams_total", "Malformed datagrams dropped, by reason.", float64(ds.InvalidDatagrams[reason]), "reason", reason)
		}
		for reason, n := range ds.InvalidDatagrams {
			if !slices.Contains(transport.InvalidDatagramReasons, reason) {
				e.counter("steadfast_transport_invalid_datagrams_total", "Malformed datagrams dropped, by reason.", float64(n), "reason", reason)
			}
		}
		e.gauge("steadfast_transport_images", "Current transport images (publishing sessions received).", float64(ds.Images))
		e.gauge("steadfast_transport_publications", "Current transport publications.", float64(ds.Publications))
		e.gauge("steadfast_transport_pending_images", "Sessions that sent a SETUP but no frame yet (no log memory).", float64(ds.PendingImages))
		e.counter("steadfast_transport_rejected_setups_total", "SETUPs refused (invalid, term too large, or a limit reached).", float64(ds.RejectedSetups))
		e.counter("steadfast_transport_evicted_images_total", "Images evicted to make room for new sessions.", float64(ds.EvictedImages))
		e.gauge("steadfast_transport_receive_buffer_bytes", "Log memory the current images hold.", float64(ds.ReceiveBufferBytes))
		e.counter("steadfast_transport_socket_errors_total", "Socket reads that failed (not timeouts).", float64(ds.SocketErrors))
		e.counter("steadfast_transport_send_errors_total", "Datagrams a socket refused to send.", float64(ds.SendErrors))
	}

	if md := mediaDriverStatus(p.driver); md != nil {
		e.gauge("steadfast_media_driver_attached", "With --aeron-dir: 1 while the pod is attached to a live media driver, 0 while the driver is lost.", b2f(md.Attached))
		e.counter("steadfast_media_driver_losses_total", "With --aeron-dir: times the media driver was lost (its heartbeat stopped or it shut down).", float64(md.Losses))
		e.counter("steadfast_media_driver_reattaches_total", "With --aeron-dir: times the pod attached again to a media driver after a loss.", float64(md.Reattaches))
	}

	if p.auth != nil {
		p.auth.collect(e)
	}
	if pb := p.pubSide; pb != nil {
		pb.collect(e)
	}
	if s := p.subSide; s != nil {
		s.collect(e)
	}
}

func (pb *publisher) collect(e emitter) {
	st := pb.status.Load()
	e.gauge("steadfast_publisher_end_seq", "Values in the whole stream (BEATS×BATCH); 0 when unbounded.", float64(pb.total))
	e.gauge("steadfast_publisher_last_seq", "Last seq generated into the outbox (values generated over all incarnations).", float64(st.Last))
	e.counter("steadfast_values_generated_total", "Values generated by this incarnation.", float64(pb.generated.Load()))
	e.gauge("steadfast_outbox_values", "Values in the outbox (not yet acknowledged by every subscriber).", float64(st.OutboxLen))
	e.gauge("steadfast_outbox_capacity", "Outbox capacity in values.", float64(st.OutboxCap))
	e.gauge("steadfast_outbox_first_seq", "Oldest seq held in the outbox.", float64(st.OutboxFirst))
	e.gauge("steadfast_outbox_full", "1 while the outbox is full and the generator is back-pressured.", b2f(st.OutboxFull))
	e.counter("steadfast_outbox_full_total", "Times the outbox became full (the generator back-pressured).", float64(pb.fullEvts.Load()))
	e.gauge("steadfast_publisher_complete", "1 when every subscriber acknowledged the whole stream.", b2f(st.Complete))
	e.counter("steadfast_acks_received_total", "Acks received from subscribers.", float64(pb.acksIn.Load()))
	e.counter("steadfast_hellos_received_total", "Hellos (replay requests) received from subscribers.", float64(pb.hellosIn.Load()))
	for reason, n := range *pb.rejects.Load() {
		e.counter("steadfast_core_rejects_total", "Inbound messages the delivery core refused before they changed any state, by reason (unknown-sender, stale-epoch, future-epoch, implausible).", float64(n), "reason", reason)
	}
	e.counter("steadfast_subscribers_retired_total", "Subscribers retired after being gone longer than --subscriber-retention, or early (they no longer hold the outbox).", float64(pb.retired.Load()))
	e.counter("steadfast_subscribers_retired_early_total", "Subscribers retired early: the outbox was full and only they, gone longer than --subscriber-grace, held it (values they had not acknowledged are released; a scaled-down subscriber).", float64(pb.early.Load()))
	e.counter("steadfast_control_rejected_total", "Ack-stream messages rejected: undecodable or from a stale epoch.", float64(pb.badIn.Load()+pb.staleIn.Load()))
	for _, s := range st.Subs {
		e.gauge("steadfast_breaker_state", "Circuit breaker per subscriber: 0 closed, 1 open, 2 half-open, 3 draining.", float64(s.State), "subscriber", s.ID)
		e.counter("steadfast_breaker_opens_total", "Times the breaker opened.", float64(s.Opens), "subscriber", s.ID)
		e.gauge("steadfast_subscriber_acked_seq", "Highest seq the subscriber acknowledged (durable on its side).", float64(s.Acked), "subscriber", s.ID)
		e.gauge("steadfast_subscriber_epoch", "Highest epoch heard from the subscriber.", float64(s.Epoch), "subscriber", s.ID)
		e.counter("steadfast_values_sent_total", "Values offered to a subscriber (replays included) by this incarnation.", float64(s.Sent), "subscriber", s.ID)
		e.counter("steadfast_values_replayed_total", "Values offered again to a subscriber (replays) by this incarnation.", float64(s.Replayed), "subscriber", s.ID)
	}
}

func (s *subscriber) collect(e emitter) {
	e.counter("steadfast_values_received_total", "Values taken into the pipeline (new, in order).", float64(s.received.Load()))
	e.counter("steadfast_values_processed_total", "Values through the FizzBuzz worker.", float64(s.processed.Load()))
	e.counter("steadfast_duplicates_dropped_total", "Values dropped at or below the dedup watermark.", float64(s.dups.Load()))
	e.counter("steadfast_stale_epoch_dropped_total", "Values and controls dropped from a stale publisher epoch.", float64(s.stale.Load()))
	e.counter("steadfast_gaps_total", "Batches that started beyond the watermark (held until the gap is filled, within the reorder window; a replay is requested if the gap lasts).", float64(s.gaps.Load()))
	e.counter("steadfast_bad_messages_total", "Undecodable data-stream messages.", float64(s.bad.Load()))
	e.counter("steadfast_worker_injected_panics_total", "Panics injected by --panic-every.", float64(s.panics.Load()))
	for reason, n := range *s.rejects.Load() {
		e.counter("steadfast_core_rejects_total", "Inbound messages the delivery core refused before they changed any state, by reason (unknown-sender, stale-epoch, future-epoch, implausible).", float64(n), "reason", reason)
	}
	// Every reason is exported from the start (0 until it happens), so
	// rate() sees the series begin.
	drops := *s.beatDrops.Load()
	for _, reason := range []string{BeatMissing, BeatFuture, BeatTooOld} {
		e.counter("steadfast_delivery_latency_dropped_total", "Batches applied without a latency sample because their beat time was missing or implausible, by reason (missing, future, too-old).", float64(drops[reason]), "reason", reason)
	}
	e.counter("steadfast_delivery_latency_clamped_total", "Latency samples clamped to 0 because the publisher's clock was ahead of this pod's.", float64(s.latencyClamped.Load()))
	e.counter("steadfast_acks_sent_total", "Acks sent to publishers.", float64(s.acksOut.Load()))
	e.counter("steadfast_hellos_sent_total", "Hellos (replay requests) sent to publishers.", float64(s.hellosOut.Load()))
	e.gauge("steadfast_subscriber_done", "1 once every publisher's stream is complete.", b2f(isClosed(s.finished)))
	if dm := s.durableM.Load(); dm != nil {
		for id, pc := range dm.committed {
			e.gauge("steadfast_committed_seq", "Last seq per publisher inside a durable snapshot (what acks report).", float64(pc.Seq), "publisher", id)
		}
	}
	t := s.tallyPub.Load()
	for id, pt := range t.Pubs {
		for _, c := range []struct {
			cat string
			v   uint64
		}{{"fizz", pt.Fizz}, {"buzz", pt.Buzz}, {"fizzbuzz", pt.FizzBuzz}, {"value", pt.Plain}} {
			e.gauge("steadfast_logger_values", "Logger count per publisher and FizzBuzz category (restored across incarnations).", float64(c.v), "publisher", id, "category", c.cat)
		}
		e.gauge("steadfast_logger_applied_values", "Values applied by the logger per publisher.", float64(pt.Count), "publisher", id)
		e.gauge("steadfast_logger_plain_values_summed", "Sum of the plain (non-Fizz/Buzz) values per publisher.", float64(pt.PlainSum), "publisher", id)
		e.gauge("steadfast_logger_first_seq", "First seq the logger applied per publisher (1 for a complete stream).", float64(pt.FirstSeq), "publisher", id)
		e.gauge("steadfast_logger_last_seq", "Last seq applied or dead-lettered per publisher.", float64(pt.LastSeq), "publisher", id)
		e.gauge("steadfast_logger_end_seq", "The publisher's end of stream (0 until it ended).", float64(pt.EndSeq), "publisher", id)
		e.gauge("steadfast_logger_dead_lettered", "Values dead-lettered by the worker per publisher.", float64(pt.DeadCount), "publisher", id)
		e.gauge("steadfast_logger_lost_values", "Values the publisher no longer had for this subscriber (lost).", float64(pt.Skipped), "publisher", id)
		e.gauge("steadfast_logger_out_of_order", "Values applied out of sequence order (0 when correct).", float64(pt.OutOfOrder), "publisher", id)
	}
}
