// Package transport is a pure-Go implementation of Aeron's UDP unicast wire
// protocol with the media driver embedded in the process. A steadfast
// publication can be received by a real Aeron subscriber through a real Aeron
// media driver, and a real Aeron publication can be received by a steadfast
// subscription (see docs/aeron-wire.md in the repository).
//
// # Usage
//
//	d, err := transport.NewDriver(transport.DefaultConfig())
//	if err != nil { ... }
//	defer d.Close()
//
//	// Receiving side: bind an endpoint, one image per publishing session.
//	sub, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:40123", 1001,
//		transport.WithImageHandlers(
//			func(img transport.Image) { log.Println("available", img.SessionID) },
//			func(img transport.Image) { log.Println("unavailable", img.SessionID) }))
//	for ctx.Err() == nil {
//		if sub.Poll(func(msg []byte, h transport.Header) {
//			// msg is only valid during the call: copy what you keep.
//		}, 64) == 0 {
//			sub.Wait(ctx) // block until data arrives (no spinning)
//		}
//	}
//
//	// Sending side: one socket per publication, sends to the endpoint and
//	// receives its status messages and NAKs on the same socket.
//	pub, err := d.AddPublication("aeron:udp?endpoint=127.0.0.1:40123", 1001)
//	for {
//		pos, err := pub.Offer(msg)
//		switch {
//		case err == nil: // pos is the stream position after msg
//		case errors.Is(err, transport.ErrBackPressured), errors.Is(err, transport.ErrNotConnected):
//			// retry later (no allocation on these paths)
//		default: // ErrClosed, ErrMessageTooLarge, ErrMaxPositionExceeded
//		}
//	}
//	pub.Close() // drains what was offered, then signals end of stream
//
// TryClaim/BufferClaim write a message in place (zero copy) instead of Offer.
//
// aeron:ipc channels connect publications and subscriptions of one Driver
// through a shared log buffer without any socket.
//
// # Channels
//
// aeron:udp?endpoint=host:port[|key=value...] and aeron:ipc[?key=value...].
// Publication keys: mtu, term-length, init-term-id + term-id + term-offset,
// session-id, linger, eos, pub-wnd, so-sndbuf, so-rcvbuf, ttl (0 only),
// sparse, max-resend, tags and alias (accepted, ignored). Subscription keys:
// session-id (filter), rcv-wnd, nak-delay, reliable (true only), rejoin,
// tether, group, so-rcvbuf, so-sndbuf, tags and alias. Sizes take k/m/g
// suffixes; durations take s/ms/us/ns (bare numbers are nanoseconds, as in
// Aeron). Errors wrap ErrBadChannel and name the offending key.
//
// # Concurrency
//
// Driver, Publication and Subscription methods are safe for concurrent use,
// except that Subscription.Poll must be called by one goroutine at a time.
// Image handlers are called from a driver goroutine, never concurrently for
// one subscription, and must not block or call Driver.Close.
// Driver.Close first lets its UDP publications send what was offered and
// end their streams (bounded by the longest publication linger), then
// stops every goroutine the driver started and closes every socket; it is
// safe to call twice.
//
// # Design
//
// The protocol core (frame.go, term.go, sender.go, receiver.go, flow.go) is
// pure: it takes the current time as an argument and hands the datagrams to
// send to a callback; it owns no socket, clock or goroutine. Thin shells
// drive it: publication_udp.go (sender), endpoint.go (receiver), ipc.go;
// udp.go owns the sockets, driver.go the driver's lifecycle.
// Per publication a send goroutine waits for offers, status messages and
// timers, and a control goroutine blocks on the publication's socket; per
// subscribed endpoint one goroutine blocks on the socket with a read deadline
// set to the next protocol timer. On Linux (amd64, arm64) datagrams are
// read and sent in batches with recvmmsg/sendmmsg, and runs of equal-length
// data datagrams go down as one UDP GSO (UDP_SEGMENT) entry that the
// kernel cuts into the same datagrams (one entry per datagram if the
// kernel refuses it). Data datagrams of 16 KiB and more that arrive in
// order are read straight into the image's log, one system call each and
// no copy; the receiver zeroes the log lazily just ahead of what arrived
// instead of whole terms. Offer wakes the sender
// through a channel of capacity 1 only when it is idle; Subscription.Wait
// and Notify are woken by the endpoint goroutine when data arrives.
// Config.SpinIdle trades CPU for latency on the send side.
//
// # Limits
//
// An image holds 3 × its term length. A SETUP alone makes only a pending
// image (no memory, no image event; at most MaxImagesPerEndpoint of them,
// the oldest evicted first); the image goes live on its first data frame
// or heartbeat if it fits Config.MaxReceiveTermLength,
// MaxImagesPerEndpoint, MaxImagesPerSource and the driver-wide
// ReceiveBufferBudget, evicting an image whose sender has been silent for
// PendingSetupHold if need be. So a SETUP flood neither starves a
// restarted publisher nor grows memory (DriverStats: PendingImages,
// RejectedSetups, EvictedImages, ReceiveBufferBytes). A peer that keeps
// sending heartbeats holds its image like any publisher. Not
// implemented: multicast, multi-destination and response channels,
// reliable=false, congestion control other than static, more than one
// subscription per stream and endpoint in one driver (see README.md).
//
// # Benchmarks
//
//	go test -run '^$' -bench . -benchtime 2s ./transport/
//
// See README.md in this directory for measured figures.
package transport
