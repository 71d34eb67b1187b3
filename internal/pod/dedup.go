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
