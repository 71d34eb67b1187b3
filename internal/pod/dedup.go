package pod

// Verdict is the subscriber's decision on an incoming batch.
type Verdict uint8

const (
	// Accept: values from index Skip onwards are new and contiguous with the
	// watermark.
	Accept Verdict = iota
	// StaleEpoch: the batch comes from an older incarnation of its
	// publisher than one already seen (a zombie); dropped.
	StaleEpoch
	// Duplicate: every value is at or below the watermark (a replay);
	// dropped.
	Duplicate
	// Gap: the batch starts beyond watermark+1 (something in between was not
	// received, e.g. the publisher had not yet learned this subscriber's
	// position); dropped, and the publisher is asked to replay.
	Gap
	// Rejected: the message failed the core's checks (unknown sender, an
	// epoch other than the member's, implausible sequence numbers); dropped
	// and counted.
	Rejected
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case StaleEpoch:
		return "stale-epoch"
	case Duplicate:
		return "duplicate"
	case Gap:
		return "gap"
	case Rejected:
		return "rejected"
	}
	return "verdict(?)"
}

// Mark is the subscriber's dedup watermark for one publisher.
type Mark struct {
	Epoch     uint64 `msgpack:"epoch"`     // highest publisher epoch seen
	Watermark uint64 `msgpack:"watermark"` // every seq <= Watermark has been taken in
}

// Dedup holds the watermarks of every publisher a subscriber has heard from.
// Not safe for concurrent use: the receive actor owns it.
type Dedup struct {
	Marks map[string]*Mark `msgpack:"marks"`
}

// NewDedup returns an empty Dedup.
func NewDedup() *Dedup { return &Dedup{Marks: map[string]*Mark{}} }

// Mark returns the watermark for pub (nil if never heard from).
func (d *Dedup) Mark(pub string) *Mark { return d.Marks[pub] }

// Set installs a watermark (restored from the logger's durable state).
func (d *Dedup) Set(pub string, epoch, watermark uint64) {
	d.Marks[pub] = &Mark{Epoch: epoch, Watermark: watermark}
}

// Check classifies a batch of n values from pub at epoch, starting at
// firstSeq. On Accept, skip is the number of leading values already taken
// in. It does not move the watermark: call Advance after the accepted values
// have been handed on. A publisher never heard from has watermark 0, so its
// stream must start at seq 1 (or be moved on explicitly with Advance when
// the publisher says earlier values no longer exist).
//
// A newer epoch is adopted by Check itself: from then on the older epoch is
// stale.
func (d *Dedup) Check(pub string, epoch, firstSeq uint64, n int) (v Verdict, skip int) {
	m := d.Marks[pub]
	if m == nil {
		m = &Mark{Epoch: epoch}
		d.Marks[pub] = m
	}
	switch {
	case epoch < m.Epoch:
		return StaleEpoch, 0
	case epoch > m.Epoch:
		m.Epoch = epoch
	}
	if n <= 0 || firstSeq == 0 {
		return Duplicate, 0
	}
	last := firstSeq + uint64(n) - 1
	switch {
	case last < firstSeq: // overflow: garbage that decoded
		return Gap, 0
	case last <= m.Watermark:
		return Duplicate, 0
	case firstSeq > m.Watermark+1:
		return Gap, 0
	}
	return Accept, int(m.Watermark + 1 - firstSeq)
}

// Advance records that every value of pub up to and including seq has been
// taken in.
func (d *Dedup) Advance(pub string, seq uint64) {
	m := d.Marks[pub]
	if m == nil {
		m = &Mark{}
		d.Marks[pub] = m
	}
	if seq > m.Watermark {
		m.Watermark = seq
	}
}
