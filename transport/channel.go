package transport

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// channel is a parsed Aeron channel URI (aeron-wire.md §8):
// aeron:udp?k=v|k=v and aeron:ipc[?k=v|...].
type channel struct {
	uri      string
	ipc      bool
	endpoint string // host:port
	iface    string

	mtu, termLength, rcvWnd, pubWnd, soRcvBuf, soSndBuf int // 0: unset
	linger, nakDelay                                    time.Duration
	hasLinger, hasNakDelay                              bool
	sessionID                                           int32
	hasSessionID                                        bool
	eos                                                 bool
	initTermID, termID, termOffset                      int32
	hasPosition                                         bool
}

const maxURILength = 4096

// knownKeys lists every key parseChannel accepts; anything else is an
// error naming the key.
var knownKeys = map[string]bool{
	"endpoint": true, "interface": true, "control": true, "control-mode": true,
	"mtu": true, "term-length": true, "init-term-id": true, "term-id": true, "term-offset": true,
	"session-id": true, "linger": true, "eos": true, "sparse": true, "pub-wnd": true,
	"max-resend": true, "ttl": true, "rcv-wnd": true, "reliable": true, "tether": true,
	"rejoin": true, "group": true, "nak-delay": true, "gtag": true, "cc": true, "fc": true,
	"so-rcvbuf": true, "so-sndbuf": true, "tags": true, "alias": true,
}

func badChannel(uri, key, format string, args ...any) error {
	if key == "" {
		return fmt.Errorf("%w: %q: %s", ErrBadChannel, uri, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%w: %q: key %q: %s", ErrBadChannel, uri, key, fmt.Sprintf(format, args...))
}

func parseChannel(uri string) (*channel, error) {
	if len(uri) > maxURILength {
		return nil, badChannel(uri[:64]+"...", "", "longer than %d bytes", maxURILength)
	}
	rest, ok := strings.CutPrefix(uri, "aeron:")
	if !ok {
		return nil, badChannel(uri, "", "must start with aeron:")
	}
	media, query, _ := strings.Cut(rest, "?")
	c := &channel{uri: uri, eos: true}
	switch media {
	case "udp":
	case "ipc":
		c.ipc = true
	default:
		return nil, badChannel(uri, "", "media %q: want udp or ipc", media)
	}
	params := map[string]string{}
	if query != "" {
		for _, kv := range strings.Split(query, "|") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return nil, badChannel(uri, k, "want key=value with neither empty")
			}
			if !knownKeys[k] {
				return nil, badChannel(uri, k, "unknown key")
			}
			if _, dup := params[k]; dup {
				return nil, badChannel(uri, k, "given twice")
			}
			params[k] = v
		}
	}
	for k, v := range params {
		if err := c.apply(k, v); err != nil {
			return nil, err
		}
	}
	if c.ipc {
		if c.endpoint != "" || c.iface != "" {
			return nil, badChannel(uri, "endpoint", "not valid for aeron:ipc")
		}
	} else if c.endpoint == "" {
		return nil, badChannel(uri, "endpoint", "required for aeron:udp (unicast)")
	}
	_, hasInit := params["init-term-id"]
	_, hasTerm := params["term-id"]
	_, hasOff := params["term-offset"]
	if hasInit || hasTerm || hasOff {
		if !hasInit || !hasTerm || !hasOff {
			return nil, badChannel(uri, "init-term-id", "init-term-id, term-id and term-offset go together")
		}
		c.hasPosition = true
		tl := c.termLength
		if tl == 0 {
			tl = maxTermLength
		}
		if c.termOffset < 0 || int(c.termOffset) > tl || c.termOffset%frameAlign != 0 {
			return nil, badChannel(uri, "term-offset", "must be 32-aligned and within the term")
		}
		if c.termID-c.initTermID < 0 {
			return nil, badChannel(uri, "term-id", "before init-term-id")
		}
	}
	return c, nil
}

func (c *channel) apply(k, v string) error {
	var err error
	switch k {
	case "endpoint":
		if _, _, e := splitHostPort(v); e != nil {
			return badChannel(c.uri, k, "%v", e)
		}
		c.endpoint = v
	case "interface":
		c.iface = v
	case "control", "control-mode":
		return badChannel(c.uri, k, "multi-destination and response channels are not supported")
	case "mtu":
		if c.mtu, err = parseSize(v); err != nil || !validMTU(c.mtu) {
			return badChannel(c.uri, k, "%q: want a multiple of 32 in (32, 65504]", v)
		}
	case "term-length":
		if c.termLength, err = parseSize(v); err != nil || !validTermLength(c.termLength) {
			return badChannel(c.uri, k, "%q: want a power of two in [64k, 1g]", v)
		}
	case "rcv-wnd", "pub-wnd", "so-rcvbuf", "so-sndbuf":
		n, err := parseSize(v)
		if err != nil || n <= 0 {
			return badChannel(c.uri, k, "%q: want a positive size", v)
		}
		switch k {
		case "rcv-wnd":
			c.rcvWnd = n
		case "pub-wnd":
			c.pubWnd = n
		case "so-rcvbuf":
			c.soRcvBuf = n
		default:
			c.soSndBuf = n
		}
	case "linger", "nak-delay":
		d, err := parseDuration(v)
		if err != nil || d < 0 {
			return badChannel(c.uri, k, "%q: want a duration (5s, 10ms, 100us, 50ns or bare ns)", v)
		}
		if k == "linger" {
			c.linger, c.hasLinger = d, true
		} else {
			c.nakDelay, c.hasNakDelay = d, true
		}
	case "session-id":
		if strings.HasPrefix(v, "tag:") {
			return badChannel(c.uri, k, "session-id tags are not supported")
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return badChannel(c.uri, k, "%q: want an int32", v)
		}
		c.sessionID, c.hasSessionID = int32(n), true
	case "init-term-id", "term-id", "term-offset":
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return badChannel(c.uri, k, "%q: want an int32", v)
		}
		switch k {
		case "init-term-id":
			c.initTermID = int32(n)
		case "term-id":
			c.termID = int32(n)
		default:
			c.termOffset = int32(n)
		}
	case "eos", "sparse", "tether", "rejoin", "group":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badChannel(c.uri, k, "%q: want true or false", v)
		}
		if k == "eos" {
			c.eos = b
		}
		if k == "group" && b {
			return badChannel(c.uri, k, "group semantics (multicast/MDC) are not supported")
		}
	case "reliable":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badChannel(c.uri, k, "%q: want true or false", v)
		}
		if !b {
			return badChannel(c.uri, k, "reliable=false (gap filling) is not supported")
		}
	case "ttl":
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 255 {
			return badChannel(c.uri, k, "%q: want 0..255", v)
		}
	case "max-resend":
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			return badChannel(c.uri, k, "%q: want a positive integer", v)
		}
	case "cc":
		if v != "static" {
			return badChannel(c.uri, k, "%q: only static congestion control is supported", v)
		}
	case "fc":
		if v != "max" && v != "unicast" {
			return badChannel(c.uri, k, "%q: only max/unicast flow control is supported", v)
		}
	case "gtag", "tags", "alias":
		// Accepted and ignored: they only name things in a real driver.
	}
	return nil
}

// parseSize parses "64k", "1m", "2g" or a bare byte count.
func parseSize(s string) (int, error) {
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("bad size")
	}
	return int(n * mult), nil
}

// parseDuration parses Aeron durations: a number with ns/us/ms/s or a bare
// number of nanoseconds.
func parseDuration(s string) (time.Duration, error) {
	unit := time.Nanosecond
	switch {
	case strings.HasSuffix(s, "ns"):
		s = s[:len(s)-2]
	case strings.HasSuffix(s, "us"):
		unit, s = time.Microsecond, s[:len(s)-2]
	case strings.HasSuffix(s, "ms"):
		unit, s = time.Millisecond, s[:len(s)-2]
	case strings.HasSuffix(s, "s"):
		unit, s = time.Second, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > int64(1<<62)/int64(unit) {
		return 0, fmt.Errorf("bad duration")
	}
	return time.Duration(n) * unit, nil
}

// splitHostPort splits host:port or [v6]:port and checks the port.
func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("%q: want host:port", s)
	}
	host, ps := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", 0, fmt.Errorf("%q: unterminated [ipv6]", s)
		}
		host = host[1 : len(host)-1]
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 || host == "" {
		return "", 0, fmt.Errorf("%q: want host:port with port 0..65535", s)
	}
	return host, port, nil
}
