package runner

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
)

// SVG layout.
const (
	svgWidth  = 900
	svgLeft   = 80 // room for the y axis labels
	svgRight  = 20
	plotWidth = svgWidth - svgLeft - svgRight
)

// ReportSVG renders rep as a standalone SVG document: throughput over time
// with the kills marked (and each kill's time until its replacement
// delivered again shaded), the kill → delivering times, the subscribers'
// beat-to-logger latency histogram when the pods export one, and the
// snapshot replication round trips.
func ReportSVG(rep *Report) string {
	var b strings.Builder
	y := 0
	body := func(f func(top int) int) { y += f(y) }
	var parts strings.Builder
	w := &svgWriter{b: &parts}
	body(func(top int) int { return w.header(top, rep) })
	body(func(top int) int { return w.throughput(top, rep) })
	body(func(top int) int { return w.killTimes(top, rep) })
	body(func(top int) int {
		return w.histogram(top, "Beat-to-logger latency (batches per bucket; includes replays after kills and clock skew across hosts)", "the pods exported no beat-to-logger latency histogram", rep.Latency)
	})
	body(func(top int) int {
		return w.histogram(top, "Snapshot replication round trip, push to acknowledgement (pushes per bucket)", "no replication round trips recorded", rep.ReplicationRoundTrip)
	})
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, y+10, svgWidth, y+10)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	b.WriteString(parts.String())
	b.WriteString("</svg>\n")
	return b.String()
}

type svgWriter struct{ b *strings.Builder }

func esc(s string) string {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s))
	return buf.String()
}

func (w *svgWriter) text(x, y float64, anchor, class, s string) {
	fmt.Fprintf(w.b, `<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, class, esc(s))
}

func (w *svgWriter) header(top int, rep *Report) int {
	verdict := "OK"
	switch {
	case rep.Interrupted:
		verdict = "INTERRUPTED"
	case !rep.OK:
		verdict = "FAILED"
	}
	c := rep.Config
	w.text(svgLeft, float64(top+24), "start", ` font-size="16" font-weight="bold"`,
		fmt.Sprintf("steadfast run %s: %d published, %d delivered, %d lost, %d duplicated", verdict, rep.Published, rep.Delivered, rep.Lost, rep.Duplicated))
	line := fmt.Sprintf("%d publisher(s) × %d subscriber(s), %d beats × %d every %s; %d kill(s); %.1fs; version %s; started %s",
		c.Publishers, c.Subscribers, c.Beats, c.Batch, c.Rate, rep.Kills, rep.ElapsedSeconds, rep.Version, rep.StartTime.Format("2006-01-02 15:04:05Z07:00"))
	w.text(svgLeft, float64(top+42), "start", ` fill="#555"`, line)
	return 56
}

// axis draws a frame, y ticks (0..ymax) and x ticks (0..xmax seconds).
func (w *svgWriter) axis(top, height int, xmax, ymax float64, ylabel, xlabel string) {
	fmt.Fprintf(w.b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", svgLeft, top, plotWidth, height)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		yy := float64(top+height) - float64(height)*float64(i)/4
		fmt.Fprintf(w.b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", svgLeft+1, yy, svgLeft+plotWidth-1, yy)
		w.text(svgLeft-6, yy+4, "end", "", human(v))
	}
	step := niceCeil(xmax / 6)
	for v := 0.0; v <= xmax+1e-9; v += step {
		xx := float64(svgLeft) + float64(plotWidth)*v/xmax
		w.text(xx, float64(top+height+16), "middle", "", trimFloat(v))
	}
	w.text(float64(svgLeft+plotWidth), float64(top+height+32), "end", ` fill="#555"`, xlabel)
	fmt.Fprintf(w.b, `<text x="14" y="%d" text-anchor="middle" transform="rotate(-90 14 %d)" fill="#555">%s</text>`+"\n",
		top+height/2, top+height/2, esc(ylabel))
}

func (w *svgWriter) throughput(top int, rep *Report) int {
	const height = 260
	top += 24
	w.text(svgLeft, float64(top-8), "start", ` font-weight="bold"`, "Throughput (values/s) with kills (red) and time until the replacement delivered (shaded)")
	tl := rep.Timeline
	xmax := max(rep.ElapsedSeconds, 1)
	if n := len(tl); n > 0 {
		xmax = max(xmax, tl[n-1].Seconds)
	}
	type pt struct{ t, pub, del float64 }
	var pts []pt
	for i := 1; i < len(tl); i++ {
		dt := tl[i].Seconds - tl[i-1].Seconds
		if dt <= 0 {
			continue
		}
		pub := float64(tl[i].Published) - float64(tl[i-1].Published)
		del := float64(tl[i].Delivered) - float64(tl[i-1].Delivered)
		pts = append(pts, pt{tl[i].Seconds, max(0, pub) / dt, max(0, del) / dt})
	}
	ymax := 1.0
	for _, p := range pts {
		ymax = math.Max(ymax, math.Max(p.pub, p.del))
	}
	ymax = niceCeil(ymax)
	w.axis(top, height, xmax, ymax, "values/s", "seconds since start")
	x := func(t float64) float64 { return float64(svgLeft) + float64(plotWidth)*t/xmax }
	y := func(v float64) float64 { return float64(top+height) - float64(height)*v/ymax }
	for _, k := range rep.KillTimes {
		if k.DeliveringAfter > 0 {
			fmt.Fprintf(w.b, `<rect class="recovery" x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4c7c3" fill-opacity="0.6"/>`+"\n",
				x(k.Seconds), top+1, math.Max(1, x(k.Seconds+k.DeliveringAfter)-x(k.Seconds)), height-2)
		}
	}
	for _, s := range []struct {
		color, dash string
		get         func(pt) float64
		name        string
	}{{"#2e9e44", "", func(p pt) float64 { return p.del }, "delivered"}, {"#4a7bd0", "5,4", func(p pt) float64 { return p.pub }, "published"}} {
		if len(pts) == 0 {
			break
		}
		var coords []string
		for _, p := range pts {
			coords = append(coords, fmt.Sprintf("%.1f,%.1f", x(p.t), y(s.get(p))))
		}
		fmt.Fprintf(w.b, `<polyline class="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`+"\n",
			s.name, s.color, s.dash, strings.Join(coords, " "))
	}
	for _, k := range rep.KillTimes {
		fmt.Fprintf(w.b, `<line class="kill" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#d03b3b" stroke-width="1.5"/>`+"\n", x(k.Seconds), top, x(k.Seconds), top+height)
		w.text(x(k.Seconds)+3, float64(top+12), "start", ` fill="#d03b3b" font-size="10"`, k.NodeID)
	}
	// Legend, below the axis label.
	lx := float64(svgLeft)
	for _, l := range []struct{ color, dash, name string }{{"#4a7bd0", "5,4", "published"}, {"#2e9e44", "", "delivered"}, {"#d03b3b", "", "kill"}} {
		ly := float64(top + height + 32)
		fmt.Fprintf(w.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", lx, ly-4, lx+18, ly-4, l.color, l.dash)
		w.text(lx+24, ly, "start", "", l.name)
		lx += 100
	}
	if len(pts) == 0 {
		w.text(float64(svgLeft+plotWidth/2), float64(top+height/2), "middle", ` fill="#999"`, "no progress samples")
	}
	return 24 + height + 44
}

func (w *svgWriter) killTimes(top int, rep *Report) int {
	if len(rep.KillTimes) == 0 {
		return 0
	}
	top += 24
	w.text(svgLeft, float64(top-8), "start", ` font-weight="bold"`, "Kill → replacement delivering (seconds)")
	maxD := 0.0
	for _, k := range rep.KillTimes {
		maxD = math.Max(maxD, k.DeliveringAfter)
	}
	maxD = niceCeil(math.Max(maxD, 0.1))
	const row, label = 18, 170 // bars start after the labels
	for i, k := range rep.KillTimes {
		yy := top + i*row
		w.text(svgLeft+label-6, float64(yy+13), "end", "", fmt.Sprintf("at %.1fs %s", k.Seconds, k.NodeID))
		if k.DeliveringAfter <= 0 {
			w.text(svgLeft+label+4, float64(yy+13), "start", ` fill="#999"`, "not measured")
			continue
		}
		bw := float64(plotWidth-label-60) * k.DeliveringAfter / maxD
		fmt.Fprintf(w.b, `<rect class="kill-to-delivering" x="%d" y="%d" width="%.1f" height="%d" fill="#d08a3b"/>`+"\n", svgLeft+label, yy+2, math.Max(bw, 1), row-4)
		w.text(float64(svgLeft+label)+bw+4, float64(yy+13), "start", "", fmt.Sprintf("%.2fs", k.DeliveringAfter))
	}
	return 24 + len(rep.KillTimes)*row + 16
}

func (w *svgWriter) histogram(top int, title, none string, h *Histogram) int {
	top += 24
	w.text(svgLeft, float64(top-8), "start", ` font-weight="bold"`, title)
	if h == nil || h.Count == 0 {
		w.text(svgLeft, float64(top+14), "start", ` fill="#999"`, none)
		return 24 + 30
	}
	const height = 200
	// Per-bucket counts from the cumulative ones, plus the overflow.
	type bar struct {
		label string
		n     uint64
	}
	var bars []bar
	var prev uint64
	for _, b := range h.Buckets {
		bars = append(bars, bar{"≤" + seconds(b.UpperBound), b.Count - min(prev, b.Count)})
		prev = b.Count
	}
	bars = append(bars, bar{"more", h.Count - min(prev, h.Count)})
	ymax := 1.0
	for _, b := range bars {
		ymax = math.Max(ymax, float64(b.n))
	}
	ymax = niceCeil(ymax)
	fmt.Fprintf(w.b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", svgLeft, top, plotWidth, height)
	for i := 0; i <= 4; i++ {
		yy := float64(top+height) - float64(height)*float64(i)/4
		w.text(svgLeft-6, yy+4, "end", "", human(ymax*float64(i)/4))
	}
	bw := float64(plotWidth) / float64(len(bars))
	for i, b := range bars {
		bh := float64(height) * float64(b.n) / ymax
		x := float64(svgLeft) + bw*float64(i)
		fmt.Fprintf(w.b, `<rect class="latency-bucket" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#7a5cc0"/>`+"\n",
			x+1, float64(top+height)-bh, math.Max(bw-2, 1), bh)
		fmt.Fprintf(w.b, `<text x="%.1f" y="%d" text-anchor="end" font-size="10" transform="rotate(-45 %.1f %d)">%s</text>`+"\n",
			x+bw/2, top+height+12, x+bw/2, top+height+12, esc(b.label))
	}
	// p50 and p99 marked where they fall (linear inside their bucket, as
	// histogram_quantile estimates them).
	for k, q := range []struct {
		q     float64
		name  string
		color string
	}{{0.5, "p50", "#2e9e44"}, {0.99, "p99", "#d03b3b"}} {
		i, frac := quantilePos(h, q.q)
		x := float64(svgLeft) + bw*(float64(i)+frac)
		fmt.Fprintf(w.b, `<line class="quantile" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4,3"/>`+"\n",
			x, top, x, top+height, q.color)
		w.text(x+3, float64(top+12+14*k), "start", ` font-size="10" fill="`+q.color+`"`, q.name+" "+quantileText(h, q.q))
	}
	mean := h.Sum / float64(h.Count)
	w.text(float64(svgLeft+plotWidth), float64(top-8), "end", ` fill="#555"`,
		fmt.Sprintf("%d samples, p50 %s, p99 %s, mean %s", h.Count, quantileText(h, 0.5), quantileText(h, 0.99), seconds(mean)))
	return 24 + height + 56
}

// quantilePos places h's q-quantile on the bar chart: the bar's index (the
// overflow bar after the last bucket) and the fraction inside it.
func quantilePos(h *Histogram, q float64) (int, float64) {
	v := h.Quantile(q)
	if h.overflows(q) {
		return len(h.Buckets), 0
	}
	lo := 0.0
	for i, b := range h.Buckets {
		if v <= b.UpperBound {
			if b.UpperBound <= lo {
				return i, 0
			}
			return i, (v - lo) / (b.UpperBound - lo)
		}
		lo = b.UpperBound
	}
	return len(h.Buckets), 0
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// human formats v with k/M suffixes.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e3:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// seconds formats a duration in seconds with a fitting unit.
func seconds(s float64) string {
	switch {
	case s < 1e-3:
		return trimFloat(s*1e6) + "µs"
	case s < 1:
		return trimFloat(s*1e3) + "ms"
	}
	return trimFloat(s) + "s"
}
