package mediadriver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// channel is what the driver itself needs from a channel URI; the
// embedded driver validates UDP channels fully.
type channel struct {
	ipc        bool
	termLength int // 0: default
	mtu        int // 0: default
	endpoint   string
}

func parseSize(v string) (int, error) {
	mul := 1
	switch {
	case strings.HasSuffix(v, "k"), strings.HasSuffix(v, "K"):
		mul, v = 1<<10, v[:len(v)-1]
	case strings.HasSuffix(v, "m"), strings.HasSuffix(v, "M"):
		mul, v = 1<<20, v[:len(v)-1]
	case strings.HasSuffix(v, "g"), strings.HasSuffix(v, "G"):
		mul, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > (1<<31-1)/mul {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * mul, nil
}

// parseChannel accepts aeron:ipc[?k=v|...] and aeron:udp?endpoint=...[|...].
func parseChannel(s string) (channel, error) {
	var ch channel
	media, params, _ := strings.Cut(s, "?")
	switch media {
	case "aeron:ipc":
		ch.ipc = true
	case "aeron:udp":
	default:
		return ch, fmt.Errorf("channel %q: only aeron:ipc and aeron:udp are supported", s)
	}
	if params != "" {
		for _, kv := range strings.Split(params, "|") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return ch, fmt.Errorf("channel %q: %q is not key=value", s, kv)
			}
			var err error
			switch k {
			case "term-length":
				ch.termLength, err = parseSize(v)
				if err == nil && !validTerm(ch.termLength) {
					err = fmt.Errorf("term-length %d not a power of two in [64k, 1g]", ch.termLength)
				}
			case "mtu":
				ch.mtu, err = parseSize(v)
				if err == nil && !validMTU(ch.mtu) {
					err = fmt.Errorf("mtu %d not a multiple of 32 in [64, 65504]", ch.mtu)
				}
			case "endpoint":
				ch.endpoint = v
			}
			if err != nil {
				return ch, fmt.Errorf("channel %q: %v", s, err)
			}
		}
	}
	if !ch.ipc && ch.endpoint == "" {
		return ch, fmt.Errorf("channel %q: aeron:udp needs endpoint=host:port", s)
	}
	return ch, nil
}

// resolveTimeout bounds a host name lookup on the conductor: the driver
// must keep heartbeating (clients give up on it after their timeout).
const resolveTimeout = 2 * time.Second

// embeddedChannel returns raw with its endpoint's host name resolved to an
// address (within resolveTimeout), so that the embedded driver never
// blocks the conductor on a slow resolver.
func embeddedChannel(raw string, ch channel) (string, error) {
	host, port, err := net.SplitHostPort(ch.endpoint)
	if err != nil {
		return "", fmt.Errorf("channel %q: endpoint %q: %v", raw, ch.endpoint, err)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return raw, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("channel %q: resolve %q: %v", raw, host, err)
	}
	pick := addrs[0]
	for _, a := range addrs {
		if a.Unmap().Is4() {
			pick = a.Unmap()
			break
		}
	}
	return strings.Replace(raw, "endpoint="+ch.endpoint, "endpoint="+net.JoinHostPort(pick.String(), port), 1), nil
}
