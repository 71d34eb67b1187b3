package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// finishReport fills the report from the subscribers' final states (their
// tallies, checked against the closed form here) and the pods' last
// metrics.
func (r *Runner) finishReport(rep *Report, firstDelivery time.Time) {
	var firstApplied, lastApplied int64 // over the subscribers' last incarnations
	n := rep.Expected
	var allowed []uint64
	if r.cfg.Showstopper >= 1 && r.cfg.Showstopper <= n {
		allowed = []uint64{r.cfg.Showstopper}
	}
	var pubs []string
	// published: the highest seq any incarnation of a publisher reported
	// (a replacement restored from an older snapshot regenerates the tail
	// again, and may not have caught up when the run ends), or any
	// subscriber applied (a value applied was generated).
	published := map[string]uint64{}
	finals := map[string]*pod.FinalState{}
	for _, nd := range r.nodes {
		if nd.role == pod.Publisher {
			pubs = append(pubs, nd.id)
			published[nd.id] = nd.published
			continue
		}
		f, err := readFinal(nd.cur().dataDir)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: no final state: %v", nd.id, err))
		}
		finals[nd.id] = f
		if f != nil {
			for id, pt := range f.Tally {
				published[id] = max(published[id], pt.LastSeq)
			}
		}
	}
	for _, id := range pubs {
		rep.Published += published[id]
	}
	for _, nd := range r.nodes {
		pr := PodReport{NodeID: nd.id, Role: nd.role.String(), Incarnations: len(nd.procs), Kills: nd.kills}
		for _, p := range nd.procs {
			if p.zombie {
				rep.Zombies++
				if p.fencedExit {
					rep.ZombiesFenced++
				}
			}
			if p.epoch > 0 {
				pr.Epochs = append(pr.Epochs, p.epoch)
			}
			if p.source != "" {
				pr.RestoreSources = append(pr.RestoreSources, p.source)
			}
			pr.Restarts += p.restarts
			r.mu.Lock()
			pr.ExitCodes = append(pr.ExitCodes, p.exitCode)
			pr.CPUSeconds += p.cpu.Seconds()
			r.mu.Unlock()
			pr.PeakRSSBytes = max(pr.PeakRSSBytes, p.peakRSS)
			pr.MediaDriverLosses += p.drvLoss
			pr.MediaDriverReattaches += p.drvBack
		}
		if nd.role == pod.Subscriber {
			f := finals[nd.id]
			if f != nil {
				if f.FirstApplied > 0 && (firstApplied == 0 || f.FirstApplied < firstApplied) {
					firstApplied = f.FirstApplied
				}
				lastApplied = max(lastApplied, f.LastApplied)
				// A short-lived last incarnation may have exited before
				// any scrape: its final state knows its epoch and source.
				if cur := nd.cur(); cur.epoch == 0 && f.Epoch > 0 {
					pr.Epochs = append(pr.Epochs, f.Epoch)
					pr.RestoreSources = append(pr.RestoreSources, f.RestoreSource)
				}
				// The last incarnation's restarts come from its final state
				// (its last scrape may predate them).
				pr.Restarts += max(0, f.Restarts-nd.cur().restarts)
				if !f.Complete && !rep.Interrupted {
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s stopped before every stream was complete", nd.id))
				}
			}
			for _, pubID := range pubs {
				var pt *pod.PubTally
				if f != nil {
					pt = f.Tally[pubID]
				}
				want := n
				if rep.Interrupted && pt != nil {
					// Stopped early: check what was delivered so far.
					want = pt.LastSeq
				}
				c := pod.Check(pt, want, allowed)
				if rep.Interrupted {
					c.Problems = filterInterrupted(c.Problems)
				}
				cr := CheckReport{Subscriber: nd.id, Publisher: pubID, CheckResult: c}
				if pt != nil {
					cr.DeadLettered = append([]uint64(nil), pt.DeadLettered...)
				}
				rep.Checks = append(rep.Checks, cr)
				rep.Lost += c.Lost
				rep.Duplicated += c.Duplicated
				rep.DeadLetters += c.Dead
				rep.Delivered += c.Delivered - min(c.Delivered, c.Duplicated)
				for _, pb := range c.Problems {
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s ← %s: %s", nd.id, pubID, pb))
				}
			}
		}
		rep.Restarts += pr.Restarts
		rep.Pods = append(rep.Pods, pr)
	}
	r.mu.Lock()
	rep.KillToDelivery = append([]float64(nil), r.killToDelivery...)
	rep.DriverKillToDelivery = append([]float64(nil), r.drvToDelivery...)
	rep.KillTimes = append([]KillMark(nil), r.kills...)
	r.mu.Unlock()
	rep.Latency = r.histogram(latencyMetric, pod.Subscriber)
	rep.ReplicationRoundTrip = r.histogram(rttMetric)
	for _, h := range []*Histogram{rep.Latency, rep.ReplicationRoundTrip} {
		if h != nil && h.Count > 0 {
			h.P50, h.P99 = h.Quantile(0.5), h.Quantile(0.99)
		}
	}
	if rep.ElapsedSeconds > 0 {
		rep.ValuesPerSecond = float64(rep.Delivered) / rep.ElapsedSeconds
	}
	// The delivery window: from the first value applied (the earliest of
	// the first scrape that saw one and the subscribers' own first
	// timestamps) to the last value applied by any subscriber.
	start := firstApplied
	if !firstDelivery.IsZero() && (start == 0 || firstDelivery.UnixNano() < start) {
		start = firstDelivery.UnixNano()
	}
	if start > 0 && lastApplied > start {
		rep.DeliverySeconds = time.Duration(lastApplied - start).Seconds()
		rep.DeliveryRate = float64(rep.Delivered) / rep.DeliverySeconds
	}
	rep.OK = !rep.Interrupted && !rep.TimedOut && rep.Lost == 0 && rep.Duplicated == 0 && len(rep.Problems) == 0
	if r.keepWork(rep.OK) {
		rep.WorkDir = r.workDir
	}
}

// keepWork: the work dir stays after a failed run, and always when the
// caller chose it (--work-dir).
func (r *Runner) keepWork(ok bool) bool { return !r.ownWork || !ok }

// The histograms the report keeps.
const (
	latencyMetric = "steadfast_delivery_latency_seconds"       // subscribers: beat to logger
	rttMetric     = "steadfast_replication_round_trip_seconds" // every pod: snapshot push to ack
)

// histogram merges the last scraped histograms called name of every
// incarnation of the given roles (all if none), or nil when no pod exports
// it.
func (r *Runner) histogram(name string, roles ...pod.Role) *Histogram {
	sums := map[float64]uint64{}
	var h Histogram
	found := false
	for _, nd := range r.nodes {
		if len(roles) > 0 && !slices.Contains(roles, nd.role) {
			continue
		}
		for _, p := range nd.procs {
			f := p.hist[name]
			if f == nil {
				continue
			}
			for _, m := range f.GetMetric() {
				mh := m.GetHistogram()
				if mh == nil {
					continue
				}
				found = true
				for _, b := range mh.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), 1) {
						sums[b.GetUpperBound()] += b.GetCumulativeCount()
					}
				}
				h.Count += mh.GetSampleCount()
				h.Sum += mh.GetSampleSum()
			}
		}
	}
	if !found {
		return nil
	}
	for le, n := range sums {
		h.Buckets = append(h.Buckets, LatencyBucket{UpperBound: le, Count: n})
	}
	sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].UpperBound < h.Buckets[j].UpperBound })
	return &h
}

// filterInterrupted drops the problems that only say the stream had not
// ended (expected after Ctrl-C).
func filterInterrupted(ps []string) []string {
	var out []string
	for _, p := range ps {
		if strings.HasPrefix(p, "end of stream at") {
			continue
		}
		out = append(out, p)
	}
	return out
}

func readFinal(dir string) (*pod.FinalState, error) {
	b, err := os.ReadFile(filepath.Join(dir, pod.FinalStateFile))
	if err != nil {
		return nil, err
	}
	var f pod.FinalState
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", pod.FinalStateFile, err)
	}
	return &f, nil
}

// deadValues names a check's dead-lettered values: " (value 4321)".
func deadValues(c CheckReport) string {
	if len(c.DeadLettered) == 0 {
		return ""
	}
	vs := make([]string, len(c.DeadLettered))
	for i, v := range c.DeadLettered {
		vs[i] = strconv.FormatUint(v, 10)
	}
	more := ""
	if c.Dead > uint64(len(vs)) {
		more = fmt.Sprintf(" and %d more", c.Dead-uint64(len(vs)))
	}
	word := "value"
	if c.Dead > 1 {
		word = "values"
	}
	return fmt.Sprintf(" (%s %s%s)", word, strings.Join(vs, ", "), more)
}

// WriteReport writes rep to path: SVG plots if path ends in .svg, else
// indented JSON. The directory is created if needed; the file is replaced
// atomically.
func WriteReport(path string, rep *Report) error {
	var b []byte
	if strings.EqualFold(filepath.Ext(path), ".svg") {
		b = []byte(ReportSVG(rep))
	} else {
		j, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		b = append(j, '\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// PrintSummary prints a human summary of rep.
func PrintSummary(w io.Writer, rep *Report) {
	verdict := "OK: nothing lost, nothing duplicated"
	if !rep.OK {
		verdict = "FAILED"
		if rep.Interrupted {
			verdict = "INTERRUPTED"
		}
	}
	fmt.Fprintf(w, "\nsteadfast run: %s\n", verdict)
	fmt.Fprintf(w, "  published   %d values (%d per publisher)\n", rep.Published, rep.Expected)
	fmt.Fprintf(w, "  delivered   %d distinct values (summed over subscribers), %.0f values/s over %.1fs (%.0f values/s while delivering)\n",
		rep.Delivered, rep.ValuesPerSecond, rep.ElapsedSeconds, rep.DeliveryRate)
	fmt.Fprintf(w, "  lost        %d\n  duplicated  %d\n  dead letters %d\n", rep.Lost, rep.Duplicated, rep.DeadLetters)
	fmt.Fprintf(w, "  restarts    %d   kills %d   replacements %d\n", rep.Restarts, rep.Kills, rep.Replacements)
	if rep.DriverKills > 0 {
		fmt.Fprintf(w, "  media driver killed %d times (of the %d kills), restarted on its directory; the pods reattached\n", rep.DriverKills, rep.Kills)
	}
	if rep.Zombies > 0 {
		fmt.Fprintf(w, "  zombies     %d frozen and resumed, %d fenced by epoch\n", rep.Zombies, rep.ZombiesFenced)
	}
	if h := rep.Latency; h != nil && h.Count > 0 {
		note := ""
		if rep.Kills > 0 {
			note = "; values replayed after a kill count from their first beat"
		}
		fmt.Fprintf(w, "  latency     beat → logger p50 %s, p99 %s, mean %s (%d batches%s)\n",
			quantileText(h, 0.5), quantileText(h, 0.99), seconds(h.Sum/float64(h.Count)), h.Count, note)
	}
	if len(rep.KillToDelivery) > 0 {
		s := append([]float64(nil), rep.KillToDelivery...)
		sort.Float64s(s)
		fmt.Fprintf(w, "  kill → replacement delivering: median %.2fs, max %.2fs (%d measured)\n", s[len(s)/2], s[len(s)-1], len(s))
	}
	if len(rep.DriverKillToDelivery) > 0 {
		s := append([]float64(nil), rep.DriverKillToDelivery...)
		sort.Float64s(s)
		fmt.Fprintf(w, "  driver kill → delivering again: median %.2fs, max %.2fs (%d measured)\n", s[len(s)/2], s[len(s)-1], len(s))
	}
	for _, p := range rep.Pods {
		drv := ""
		if p.MediaDriverLosses > 0 {
			drv = fmt.Sprintf("  media driver lost %d, reattached %d", p.MediaDriverLosses, p.MediaDriverReattaches)
		}
		fmt.Fprintf(w, "  %-14s %-10s incarnations %d  epochs %v  restored from %v  restarts %d  peak RSS %.1f MiB  CPU %.2fs%s\n",
			p.NodeID, p.Role, p.Incarnations, p.Epochs, p.RestoreSources, p.Restarts, float64(p.PeakRSSBytes)/(1<<20), p.CPUSeconds, drv)
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "  %s ← %s: delivered %d, lost %d, duplicated %d, dead letters %d%s\n",
			c.Subscriber, c.Publisher, c.Delivered, c.Lost, c.Duplicated, c.Dead, deadValues(c))
	}
	for _, p := range rep.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", p)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if !rep.OK && rep.WorkDir != "" {
		fmt.Fprintf(w, "  pods' logs and data dirs kept in %s\n", rep.WorkDir)
	}
}

// quantileText is h's q-quantile for people: "1.2ms", or "> 30s" when it
// lies beyond the last bucket.
func quantileText(h *Histogram, q float64) string {
	if h.overflows(q) {
		return "> " + seconds(h.Quantile(q))
	}
	return seconds(h.Quantile(q))
}

// Close removes the work dir the runner created, unless keep.
func (r *Runner) Close(keep bool) error {
	r.stopAll()
	if r.ownWork && !keep {
		return os.RemoveAll(r.workDir)
	}
	return nil
}
