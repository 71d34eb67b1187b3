// Package auth authenticates the pods' data-plane messages (batches, acks,
// hellos, end-of-stream controls) with keys derived from the cluster key.
//
// Keys: HKDF-SHA256 extracts a pseudorandom key from each cluster key
// (salt "steadfast data plane"), and expands it into one key per sender
// incarnation, bound to the sender's node id and epoch. Every member holds
// the cluster key and so can derive every sender key: the binding stops a
// message of one incarnation from being taken as another's (counters
// restart with every incarnation), not a member from lying.
//
// Messages: the sender appends a 24-byte trailer (see TrailerLen) to the
// codec body: its message counter and a 16-byte HMAC-SHA256 tag over the
// body, the counter and the recipient's id and epoch. A message is thus
// good for one recipient incarnation only; replayed to another pod, or to
// the recipient's next incarnation, it fails.
//
// A receiver decodes the body (auth.Body strips the trailer; the codec
// decoders are safe on any input), takes the sender's id and epoch from it,
// and calls Verifier.Verify before the message may change any state:
//
//	body, ok := auth.Body(msg)
//	if !ok || codec.DecodeAck(body, &ack) != nil { drop(); return }
//	if err := verifier.Verify(msg, auth.Peer{ID: ack.Subscriber, Epoch: ack.SubscriberEpoch}); err != nil {
//		drop(); return // counted by the verifier
//	}
//	apply(ack)
//
// Verify refuses a bad tag, a counter already seen or older than Window
// below the highest accepted (the transport delivers each session in
// order; the window covers a sender's messages to other recipients and a
// reconnect), and an epoch older than one already authenticated for the
// same node id. Only an authenticated message adds or advances a sender's
// state, and the number of senders is bounded.
//
// What this does not do: it does not encrypt (the values are not secret),
// does not check that a sender is a live member (the pods do that against
// their membership view), and offers no protection to a pod run without a
// cluster key.
//
// Key rotation: NewKeys takes several cluster keys; the first seals, all
// verify, so a cluster can move from one key to the next as memberlist's
// keyring does (install the new key as secondary everywhere, make it
// primary everywhere, remove the old one).
package auth
