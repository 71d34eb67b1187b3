package transport

// Stats returns aggregated counters over live and closed publications and
// subscriptions.
func (d *Driver) Stats() DriverStats {
	d.mu.Lock()
	out := d.retired
	out.InvalidDatagrams = map[string]uint64{}
	for k, v := range d.retired.InvalidDatagrams {
		out.InvalidDatagrams[k] = v
	}
	var pubs []*Publication
	for p := range d.pubs {
		pubs = append(pubs, p)
	}
	var subs []*Subscription
	for s := range d.subs {
		subs = append(subs, s)
	}
	var eps []*endpoint
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	d.mu.Unlock()
	out.Publications, out.Subscriptions, out.Endpoints = len(pubs), len(subs), len(eps)
	for _, p := range pubs {
		addPubStats(&out, p.Stats())
	}
	for _, s := range subs {
		st := s.Stats()
		addSubStats(&out, st)
		out.Images += st.Images
	}
	for _, e := range eps {
		e.mu.Lock()
		addEndpointStats(&out, &e.core.c)
		for _, img := range e.core.images {
			if img.pending {
				out.PendingImages++
			}
		}
		e.mu.Unlock()
	}
	out.ReceiveBufferBytes = d.budget.used.Load()
	out.SocketErrors = d.socketErrors.Load()
	out.SendErrors += d.sendErrors.Load()
	return out
}

func addPubStats(out *DriverStats, ps PublicationStats) {
	out.FramesSent += ps.FramesSent
	out.BytesSent += ps.BytesSent
	out.SetupsSent += ps.SetupsSent
	out.SMsReceived += ps.StatusMessages
	out.NAKsReceived += ps.NAKsReceived
	out.Retransmits += ps.Retransmits
	out.HeartbeatsSent += ps.HeartbeatsSent
	out.BackPressure += ps.BackPressureEvents
	out.SendErrors += ps.SendErrors
	if ps.InvalidFrames > 0 {
		if out.InvalidDatagrams == nil {
			out.InvalidDatagrams = map[string]uint64{}
		}
		out.InvalidDatagrams["publication"] += ps.InvalidFrames
	}
}

func addSubStats(out *DriverStats, ss SubscriptionStats) {
	out.FramesReceived += ss.FramesReceived
	out.BytesReceived += ss.BytesReceived
	out.SetupsReceived += ss.SetupsReceived
	out.SMsSent += ss.StatusMessagesSent
	out.NAKsSent += ss.NAKsSent
}

func addImageCounters(dst, src *imageCounters) {
	dst.frames += src.frames
	dst.bytes += src.bytes
	dst.datagrams += src.datagrams
	dst.heartbeats += src.heartbeats
	dst.setups += src.setups
	dst.sms += src.sms
	dst.naks += src.naks
	dst.duplicates += src.duplicates
	dst.overruns += src.overruns
}

// addEndpointStats adds what an endpoint counts itself (datagrams dropped
// before reaching an image, SETUP admission).
func addEndpointStats(out *DriverStats, c *endpointCounters) {
	for r, n := range c.invalid {
		if n > 0 {
			if out.InvalidDatagrams == nil {
				out.InvalidDatagrams = map[string]uint64{}
			}
			out.InvalidDatagrams[dropReason(r).String()] += n
		}
	}
	out.UnknownStream += c.unknownStream
	out.SMsSent += c.setupRequests
	out.RejectedSetups += c.rejectedSetup
	out.EvictedImages += c.evicted
}
