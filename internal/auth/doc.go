// Package auth authenticates the pods' data-plane messages (batches, acks,
// hellos, end-of-stream controls) with keys derived from the cluster key.
//
// Keys: HKDF-SHA256 extracts a pseudorandom key from each cluster key
// (salt "steadfast data plane") and expands it into one AES-256-GCM key per
// pair of incarnations: sender (node id, epoch) to recipient (node id,
// epoch). Every member holds the cluster key and so can derive every key:
// the binding stops a message of one incarnation from being taken as
// another's, or one meant for one pod from being accepted by another or by
// the same pod's next incarnation (counters restart with every
// incarnation); it does not stop a member from lying.
//
// Messages: the sender appends a 28-byte trailer (see TrailerLen) to the
// codec body: a random per-sealer salt and its message counter (together
// the GCM nonce) and a 16-byte GMAC tag (AES-GCM with the body as
// additional data and no plaintext). The salt keeps nonces unique even if
// two processes ever ran as the same incarnation.
//
// Why GMAC and not HMAC-SHA256: both are in the standard library and give
// a 128-bit tag; GMAC (AES-NI and carry-less multiply) costs a quarter to a
// fifth of HMAC-SHA256 (SHA-NI) on this project's machines — see
// BenchmarkVerify against BenchmarkHMACAlternative — and its one weakness,
// nonce reuse, is excluded by a key per pair of incarnations, a counter per
// sealer and the random salt.
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
