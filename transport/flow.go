package transport

// Unicast flow control (aeron-wire.md §5), shared by the sender and the
// receiver cores.

// senderLimit applies a status message: the limit never decreases
// ("max" and "unicast" flow control use the same rule).
func senderLimit(limit, smPos int64, window int32) int64 {
	return max(limit, smPos+int64(window))
}

// effectiveWindow is the receiver window advertised for a term length:
// min(configured, T/2).
func effectiveWindow(configured int, termLen int32) int32 {
	return int32(min(configured, int(termLen)/2))
}

// smDue reports whether a receiver should send a status message now:
// never sent yet, consumption moved more than W/4 past the last SM, or the
// SM timeout elapsed.
func smDue(now, lastSMTime int64, sentOnce bool, consumption, lastSMPos int64, window int32, timeout int64) bool {
	return !sentOnce || consumption > lastSMPos+int64(window/4) || now-lastSMTime >= timeout
}

// overrun reports whether data ending at end lies beyond what the receiver
// can hold: lastSMPos + T/2.
func overrun(end, lastSMPos int64, termLen int32) bool {
	return end > lastSMPos+int64(termLen/2)
}
