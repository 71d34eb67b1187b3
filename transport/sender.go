package transport

// Pure sender state of a network publication (aeron-wire.md §4–§7). It owns
// no socket, clock or goroutine: the runner calls onControl for every
// datagram received on the publication's socket and doWork when the
// producer advanced or a timer is due, passing the current time; every
// datagram to send is handed to out, which must not retain it.

// sendFunc transmits one datagram; b is only valid during the call.
type sendFunc func(b []byte)

type senderParams struct {
	sessionID int32
	streamID  int32
	mtu       int
	pubWindow int64
	// Times in nanoseconds.
	heartbeat   int64 // idle heartbeat and SETUP resend interval
	connTimeout int64 // no SM for this long: not connected
	rtxLinger   int64
	linger      int64 // end-of-stream phase bound
	eos         bool  // send 0xE0 heartbeats on close
}

type rcvLiveness struct {
	id     int64
	lastSM int64
}

type senderCounters struct {
	framesSent, bytesSent, datagramsSent   uint64
	setupsSent, heartbeatsSent             uint64
	sms, setupRequests, naks               uint64
	retransmits, retransmitBytes, rtxLimit uint64
	invalid                                uint64
}

type sender struct {
	p      senderParams
	log    *logBuffer
	maxMsg int

	pos   int64 // sender position: everything below was transmitted once
	limit int64 // flow-control limit from status messages

	setupActive bool
	lastSetup   int64
	smSeen      bool // a non-0x80 SM arrived at least once
	lastSend    int64
	receivers   []rcvLiveness

	rtxActive bool
	rtxTermID int32
	rtxOff    int32
	rtxLen    int32
	rtxUntil  int64

	acked     int64 // highest consumption position a status message reported
	closing   bool
	eosPhase  bool // drained after close: sending 0xE0 heartbeats
	eosSent   bool // at least one 0xE0 heartbeat went out
	lingerEnd int64
	lastEOS   int64
	finished  bool

	// blockedLimit is the flow-control limit at which the last doWork
	// could not send the next frame (window too small); -1 when not
	// blocked. The runner waits for a larger limit instead of spinning.
	blockedLimit int64

	c       senderCounters
	scratch [64]byte
}

func newSender(p senderParams, log *logBuffer, startPos int64, now int64) *sender {
	return &sender{
		p:            p,
		log:          log,
		maxMsg:       maxMessageLength(log.termLen),
		pos:          startPos,
		limit:        startPos,
		setupActive:  true,
		lastSetup:    now - p.heartbeat, // first SETUP at once
		blockedLimit: -1,
	}
}

// connected reports whether a receiver sent a non-EOS SM within the
// connection timeout.
func (s *sender) connected(now int64) bool {
	for _, r := range s.receivers {
		if now-r.lastSM < s.p.connTimeout {
			return true
		}
	}
	return false
}

// producerLimit is the position a producer may append up to: frozen at the
// sender position when not connected, else senderPos + publication window.
func (s *sender) producerLimit(now int64) int64 {
	if !s.connected(now) || s.closing {
		return s.pos
	}
	return s.pos + s.p.pubWindow
}

// flushed reports whether a closing sender has nothing left that matters
// to the subscriber: everything was sent and acknowledged by a status
// message and the end of stream went out at least once. The EOS phase may
// go on (until the subscriber acknowledges it or the linger ends); a
// driver shutting down need not wait for that.
func (s *sender) flushed() bool {
	return s.finished || (s.eosPhase && s.eosSent && s.acked >= s.pos)
}

// close starts the end-of-stream phase: drain, then 0xE0 heartbeats.
func (s *sender) close(now int64) {
	if s.closing {
		return
	}
	s.closing = true
	s.lingerEnd = now + s.p.linger + s.p.connTimeout // bound for the drain too
}

// onControl handles a datagram received on the publication's socket.
func (s *sender) onControl(b []byte, now int64, out sendFunc) {
	if r := checkDatagram(b); r != dropNone {
		s.c.invalid++
		return
	}
	switch getType(b) {
	case typeSM:
		s.onSM(b, now)
	case typeNAK:
		s.onNAK(b, now, out)
	case typeRTTM, typeErr, typeRspSetup:
		// RTTM requests come only from cubic receivers; ERR and
		// RSP_SETUP need no action for unicast.
	default:
		s.c.invalid++
	}
}

func (s *sender) onSM(b []byte, now int64) {
	if getI32(b, 8) != s.p.sessionID || getI32(b, 12) != s.p.streamID {
		s.c.invalid++
		return
	}
	s.c.sms++
	flags := getFlags(b)
	if flags&smFlagSetup != 0 {
		s.c.setupRequests++
		if !s.eosPhase {
			s.setupActive = true
		}
		return
	}
	id := getI64(b, 28)
	if flags&smFlagEOS != 0 {
		for i, r := range s.receivers {
			if r.id == id {
				s.receivers = append(s.receivers[:i], s.receivers[i+1:]...)
				break
			}
		}
		return
	}
	smPos, ok := s.log.position(getI32(b, 16), getI32(b, 20))
	if !ok || smPos > s.pos {
		// A receiver cannot have consumed what was never sent: a status
		// message past the sender position is forged (status messages are
		// not authenticated; it takes only the session id and this
		// socket's port). Believed, it would lift the limit for good and
		// the sender would overrun the real receiver's window, beyond what
		// it can retransmit.
		s.c.invalid++
		return
	}
	window := min(getI32(b, 24), s.log.termLen/2)
	if window < 0 {
		window = 0
	}
	found := false
	for i := range s.receivers {
		if s.receivers[i].id == id {
			s.receivers[i].lastSM = now
			found = true
			break
		}
	}
	if !found {
		// Forget receivers silent for longer than the connection timeout
		// so a long-lived publication does not collect every receiver id
		// it ever saw.
		live := s.receivers[:0]
		for _, r := range s.receivers {
			if now-r.lastSM < s.p.connTimeout {
				live = append(live, r)
			}
		}
		s.receivers = append(live, rcvLiveness{id: id, lastSM: now})
	}
	s.limit = senderLimit(s.limit, smPos, window)
	s.acked = max(s.acked, smPos)
	if !s.smSeen {
		s.smSeen = true
		s.lastSend = now - s.p.heartbeat // heartbeat at once, as aeronmd does
	}
	s.setupActive = false
}

func (s *sender) onNAK(b []byte, now int64, out sendFunc) {
	if getI32(b, 8) != s.p.sessionID || getI32(b, 12) != s.p.streamID {
		s.c.invalid++
		return
	}
	s.c.naks++
	termID, off, length := getI32(b, 16), getI32(b, 20), getI32(b, 24)
	T := s.log.termLen
	if off < 0 || off > T-hdrLen || length <= 0 || off%frameAlign != 0 {
		return
	}
	length = min(length, T-off, 16*min(128*1024, T/2))
	pos, ok := s.log.position(termID, off)
	if !ok || pos >= s.pos || pos < s.pos-int64(T/2)-int64(s.maxMsg) {
		s.c.rtxLimit++
		return
	}
	if s.rtxActive && now < s.rtxUntil && termID == s.rtxTermID && off >= s.rtxOff && off < s.rtxOff+s.rtxLen {
		return // lingering on an overlapping retransmission
	}
	s.rtxActive, s.rtxTermID, s.rtxOff, s.rtxLen, s.rtxUntil = true, termID, off, length, now+s.p.rtxLinger
	end := min(pos+int64(length), s.pos)
	p := pos
	for p < end {
		term := s.log.termAt(p)
		o := s.log.termOffset(p)
		n, padding, _ := scanFrames(term, o, s.p.mtu, s.pos-p, end-p)
		if n == 0 {
			break
		}
		out(term[o : int(o)+n])
		s.c.retransmits++
		s.c.retransmitBytes += uint64(n)
		s.c.datagramsSent++
		p += int64(n + padding)
	}
}

// scanFrames returns the length of the run of whole frames starting at off
// that fits in maxBytes and in avail bytes, only taking frames that start
// before softEnd; a PAD counts 32 bytes, ends the run and its remaining
// length is returned as padding.
func scanFrames(term []byte, off int32, maxBytes int, avail, softEnd int64) (n, padding, frames int) {
	limit := int64(maxBytes)
	if avail < limit {
		limit = avail
	}
	for int64(n) < softEnd && int(off)+n+hdrLen <= len(term) {
		f := term[int(off)+n:]
		fl := int(getFrameLength(f))
		if fl <= 0 {
			break
		}
		if getType(f) == typePad {
			if int64(n+hdrLen) > limit {
				break
			}
			n += hdrLen
			padding = align32(fl) - hdrLen // an aborted claim's PAD is not aligned
			frames++
			break
		}
		a := align32(fl)
		if int64(n+a) > limit {
			break
		}
		n += a
		frames++
	}
	return n, padding, frames
}

// doWork sends what is due at now: SETUPs, new data within the flow
// control limit, heartbeats and end-of-stream heartbeats. producerPos is
// the publication's tail. It returns the number of datagrams sent.
func (s *sender) doWork(now, producerPos int64, out sendFunc) int {
	if s.finished {
		return 0
	}
	work := 0
	if s.setupActive && !s.eosPhase && now-s.lastSetup >= s.p.heartbeat {
		out(encodeSetup(s.scratch[:], s.log.termOffset(s.pos), s.p.sessionID, s.p.streamID,
			s.log.initialTermID, s.log.termID(s.pos), s.log.termLen, int32(s.p.mtu), 0))
		s.lastSetup = now
		s.c.setupsSent++
		s.c.datagramsSent++
		work++
	}
	avail := min(producerPos, s.limit)
	s.blockedLimit = -1
	for s.pos < avail {
		term := s.log.termAt(s.pos)
		o := s.log.termOffset(s.pos)
		n, padding, frames := scanFrames(term, o, s.p.mtu, avail-s.pos, avail-s.pos)
		if n == 0 {
			s.blockedLimit = s.limit // next frame does not fit the window: wait
			break
		}
		out(term[o : int(o)+n])
		s.c.framesSent += uint64(frames)
		s.c.bytesSent += uint64(n)
		s.c.datagramsSent++
		s.pos += int64(n + padding)
		s.lastSend = now
		work++
	}
	if s.closing && s.pos >= producerPos {
		if !s.eosPhase {
			s.eosPhase = true
			s.lingerEnd = now + s.p.linger
			s.lastEOS = now - s.p.heartbeat
		}
		if !s.p.eos || !s.connected(now) || now >= s.lingerEnd {
			s.finished = true
			return work
		}
		if now-s.lastEOS >= s.p.heartbeat {
			out(encodeHeartbeat(s.scratch[:], flagsUnfrag|flagEOS, s.log.termOffset(s.pos), s.p.sessionID, s.p.streamID, s.log.termID(s.pos)))
			s.lastEOS = now
			s.eosSent = true
			s.lastSend = now
			s.c.heartbeatsSent++
			s.c.datagramsSent++
			work++
		}
		return work
	}
	if s.closing && (now >= s.lingerEnd || !s.connected(now)) {
		s.finished = true // cannot drain: nobody is listening
		return work
	}
	if s.smSeen && now-s.lastSend >= s.p.heartbeat {
		out(encodeHeartbeat(s.scratch[:], flagsUnfrag, s.log.termOffset(s.pos), s.p.sessionID, s.p.streamID, s.log.termID(s.pos)))
		s.lastSend = now
		s.c.heartbeatsSent++
		s.c.datagramsSent++
		work++
	}
	return work
}

// nextDeadline returns the next time doWork has something to do without a
// new offer or control datagram.
func (s *sender) nextDeadline(now int64) int64 {
	if s.finished {
		return now + 1<<40
	}
	d := now + s.p.heartbeat
	if s.setupActive && !s.eosPhase {
		d = min(d, s.lastSetup+s.p.heartbeat)
	}
	if s.eosPhase {
		d = min(d, s.lastEOS+s.p.heartbeat, s.lingerEnd)
	} else if s.smSeen {
		d = min(d, s.lastSend+s.p.heartbeat)
	}
	if s.closing {
		d = min(d, s.lingerEnd)
	}
	for _, r := range s.receivers {
		if e := r.lastSM + s.p.connTimeout; e > now {
			d = min(d, e)
		}
	}
	return max(d, now)
}
