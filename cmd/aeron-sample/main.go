// Command aeron-sample is a command-line entry point to the transport
// package that mirrors Aeron's C sample clients (basic_subscriber,
// basic_publisher, streaming_publisher), so that our wire protocol can be
// checked against a real Aeron media driver (aeronmd):
//
//	aeron-sample subscribe --channel aeron:udp?endpoint=127.0.0.1:40123 --stream 1001
//	aeron-sample publish   --channel aeron:udp?endpoint=127.0.0.1:40123 --stream 1001 --messages 10
//
// Run it with --help (or "aeron-sample <command> --help") for the flags and
// the interop recipe; ../../transport/README.md has the same recipe.
package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/aeronclient"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2

	defaultChannel = "aeron:udp?endpoint=127.0.0.1:40123"
	defaultStream  = 1001
)

const topUsage = `aeron-sample: our pure-Go Aeron transport (embedded media driver) behind a
command line that mirrors Aeron's C sample clients, for wire-compatibility
checks against a real Aeron media driver (aeronmd).

Usage:
  aeron-sample subscribe [flags]   like basic_subscriber
  aeron-sample publish [flags]     like basic_publisher / streaming_publisher -L S
  aeron-sample <command> --help    flags of a command

Interop check (aeronmd and the C samples on the same host):
  real publisher -> us:
    aeronmd &
    aeron-sample subscribe --channel 'aeron:udp?endpoint=127.0.0.1:40123' --stream 1001
    basic_publisher -c 'aeron:udp?endpoint=127.0.0.1:40123' -s 1001
  us -> real subscriber:
    aeronmd &
    basic_subscriber -c 'aeron:udp?endpoint=127.0.0.1:40123' -s 1001
    aeron-sample publish --channel 'aeron:udp?endpoint=127.0.0.1:40123' --stream 1001

With --aeron-dir DIR (or $AERON_DIR) both commands are clients of the
media driver running in DIR (aeronmd, or cmd/mediadriver) instead of
embedding one, e.g. --aeron-dir /dev/shm/aeron-$USER --channel aeron:ipc.

Our defaults differ from Aeron's: MTU 8192 (Aeron 1408) and term length 4 MiB
(Aeron 16 MiB); append |mtu=1408|term-length=16m to the channel to match
Aeron exactly.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "aeron-sample: missing command (subscribe or publish); see aeron-sample --help")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second Ctrl-C kills at once
	switch args[0] {
	case "subscribe":
		return subscribe(ctx, args[1:], stdout, stderr)
	case "publish":
		return publish(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "aeron-sample: unknown command %q (subscribe or publish); see aeron-sample --help\n", args[0])
		return exitUsage
	}
}

// common holds the flags both commands share.
type common struct {
	channel  string
	stream   int
	logLevel string
	aeronDir string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.channel, "channel", defaultChannel, "Aeron channel URI (aeron:udp?endpoint=host:port[|mtu=1408|term-length=16m...])")
	fs.IntVar(&c.stream, "stream", defaultStream, "stream id")
	fs.StringVar(&c.logLevel, "log-level", "", "transport debug log to stderr: debug, info, warn or error (default off)")
	fs.StringVar(&c.aeronDir, "aeron-dir", os.Getenv("AERON_DIR"), "attach to the media driver running in this directory (Aeron's aeron.dir: aeronmd or cmd/mediadriver) instead of embedding one (default $AERON_DIR; empty: embedded)")
}

// conn is where streams come from: the embedded driver, or a media driver
// in another process (--aeron-dir).
type conn struct {
	emb *transport.Driver
	ext *aeronclient.Client
}

// connect starts an embedded driver, or attaches to the one in --aeron-dir.
func (c *common) connect(stderr io.Writer) (*conn, error) {
	if c.aeronDir == "" {
		d, err := c.driver(stderr)
		if err != nil {
			return nil, err
		}
		return &conn{emb: d}, nil
	}
	cl, err := aeronclient.Connect(aeronclient.Config{Dir: c.aeronDir, ConnectTimeout: 5 * time.Second, Name: "aeron-sample"})
	if err != nil {
		return nil, err
	}
	return &conn{ext: cl}, nil
}

func (k *conn) Close() error {
	if k.ext != nil {
		return k.ext.Close()
	}
	return k.emb.Close()
}

func (k *conn) addSubscription(channel string, stream int32, avail, unavail func(transport.Image)) (transport.Subscriber, error) {
	if k.ext != nil {
		return k.ext.AddSubscription(channel, stream, aeronclient.WithImageHandlers(avail, unavail))
	}
	return k.emb.AddSubscription(channel, stream, transport.WithImageHandlers(avail, unavail))
}

func (k *conn) addPublication(channel string, stream int32) (transport.Publisher, error) {
	if k.ext != nil {
		return k.ext.AddPublication(channel, stream)
	}
	return k.emb.AddPublication(channel, stream)
}

// driver validates the shared flags and starts an embedded driver.
func (c *common) driver(stderr io.Writer) (*transport.Driver, error) {
	cfg := transport.DefaultConfig()
	if c.logLevel != "" {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
			return nil, usageError{fmt.Sprintf("invalid --log-level %q (debug, info, warn, error)", c.logLevel)}
		}
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	}
	return transport.NewDriver(cfg)
}

func (c *common) validate() error {
	if c.stream < -1<<31 || c.stream > 1<<31-1 {
		return usageError{fmt.Sprintf("--stream %d does not fit a 32-bit stream id", c.stream)}
	}
	if !strings.HasPrefix(c.channel, "aeron:") {
		return usageError{fmt.Sprintf("--channel %q is not an aeron: URI", c.channel)}
	}
	return nil
}

// usageError is a bad command line: one line on stderr, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags parses args into fs. It returns (exit code, true) when the
// command must stop: --help (usage on stdout, exit 0) or a bad flag (one
// line on stderr, exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "aeron-sample %s: %v (see aeron-sample %s --help)\n", fs.Name(), err, fs.Name())
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "aeron-sample %s: unexpected argument %q (see aeron-sample %s --help)\n", fs.Name(), fs.Arg(0), fs.Name())
		return exitUsage, true
	}
	return 0, false
}

// failure reports err and returns the exit code for it.
func failure(cmd string, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "aeron-sample %s: %v\n", cmd, err)
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, transport.ErrBadChannel) || errors.Is(err, transport.ErrBadConfig) {
		return exitUsage
	}
	return exitFail
}

// ---------------------------------------------------------------- subscribe

const subscribeUsage = `Usage: aeron-sample subscribe [flags]

Mirrors Aeron's C basic_subscriber: binds the channel's endpoint with an
embedded media driver and prints, for every message,
  Message to stream <stream> from session <id> (<length>@<position>) <<<text>>>
(<text> is the message when it is all printable ASCII, otherwise
"hex:" and the hex of its first 16 bytes, "..." when longer; <position> is
the stream position just after the message), and for every publishing
session
  Available image on <channel> streamId=<stream> sessionId=<id> from <ip:port>
  Unavailable image on <channel> streamId=<stream> sessionId=<id>
as the Aeron samples print them. On exit it prints a summary line
  Shutting down... received <n> messages, <bytes> bytes ...

With --count N it stops after N messages, then waits (up to --drain) for
every image to go unavailable (a publisher's end of stream makes its image
unavailable about 1 s later) so the Unavailable lines are printed too, and
exits 0. With --count 0 it runs until SIGINT/SIGTERM or --timeout (exit 0).
If --timeout expires before --count messages arrived it exits 1.

Interop check against a real aeronmd (run aeronmd first):
  aeron-sample subscribe --channel 'aeron:udp?endpoint=127.0.0.1:40123' --stream 1001
  basic_publisher -c 'aeron:udp?endpoint=127.0.0.1:40123' -s 1001
  streaming_publisher -c 'aeron:udp?endpoint=127.0.0.1:40123' -s 1001 -L 20000 -m 1000

Bad flags: one line on stderr, exit 2.

Flags:
`

func subscribe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("subscribe", flag.ContinueOnError)
	var c common
	c.register(fs)
	count := fs.Int("count", 0, "exit after this many messages (0: until SIGINT/SIGTERM or --timeout)")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: no limit); exit 1 if --count was not reached")
	drain := fs.Duration("drain", 5*time.Second, "after --count messages, wait up to this long for the images to go unavailable")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), subscribeUsage)
		fs.PrintDefaults()
	}
	if code, stop := parseFlags(fs, args, stdout, stderr); stop {
		return code
	}
	if err := c.validate(); err != nil {
		return failure("subscribe", err, stderr)
	}
	if *count < 0 || *timeout < 0 || *drain < 0 {
		return failure("subscribe", usageError{"--count, --timeout and --drain must not be negative"}, stderr)
	}
	d, err := c.connect(stderr)
	if err != nil {
		return failure("subscribe", err, stderr)
	}
	defer d.Close()

	s := &subscriber{out: stdout, channel: c.channel, stream: int32(c.stream), count: *count,
		wake: make(chan struct{}, 1), announced: map[int32]bool{}, early: map[int32]int{}}
	sub, err := d.addSubscription(c.channel, int32(c.stream), s.queue(true), s.queue(false))
	if err != nil {
		return failure("subscribe", err, stderr)
	}
	defer sub.Close()
	fmt.Fprintf(stdout, "Subscribing to channel %s on Stream ID %d\n", c.channel, c.stream)

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	code := s.loop(ctx, sub, *drain)
	s.flushEvents()
	el := s.last.Sub(s.start)
	fmt.Fprintf(stdout, "Shutting down... received %d messages, %d bytes in %.3fs (%.0f msgs/s, %.2f MB/s)\n",
		s.msgs, s.bytes, el.Seconds(), rate(float64(s.msgs), el), rate(float64(s.bytes)/1e6, el))
	return code
}

// imageEvent is an image handler call, queued for the polling goroutine so
// that all output comes from one goroutine in order.
type imageEvent struct {
	available bool
	img       transport.Image
}

type subscriber struct {
	out     io.Writer
	channel string
	stream  int32
	count   int

	mu     sync.Mutex
	events []imageEvent
	wake   chan struct{}

	// announced: sessions whose Available line was printed and whose
	// Unavailable line was not. early: Available lines printed from Poll
	// before the handler's event arrived (the image is pollable just before
	// its handler runs), so the event is not printed twice.
	announced map[int32]bool
	early     map[int32]int

	open        int // announced sessions
	msgs, bytes int64
	start, last time.Time // first and last message shown
}

// queue returns an image handler; it must not block.
func (s *subscriber) queue(available bool) func(transport.Image) {
	return func(img transport.Image) {
		s.mu.Lock()
		s.events = append(s.events, imageEvent{available, img})
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *subscriber) flushEvents() {
	s.mu.Lock()
	evs := s.events
	s.events = nil
	s.mu.Unlock()
	for _, ev := range evs {
		id := ev.img.SessionID
		if ev.available {
			if s.early[id] > 0 {
				s.early[id]--
				continue
			}
			s.printAvailable(ev.img)
			continue
		}
		if s.announced[id] {
			s.open--
		}
		s.announced[id] = false
		fmt.Fprintf(s.out, "Unavailable image on %s streamId=%d sessionId=%d\n", s.channel, s.stream, id)
	}
}

func (s *subscriber) printAvailable(img transport.Image) {
	if !s.announced[img.SessionID] {
		s.open++
	}
	s.announced[img.SessionID] = true
	fmt.Fprintf(s.out, "Available image on %s streamId=%d sessionId=%d from %s\n", s.channel, s.stream, img.SessionID, img.Source)
}

func (s *subscriber) onMessage(sub transport.Subscriber, msg []byte, h transport.Header) {
	if s.count > 0 && s.msgs >= int64(s.count) {
		return // past --count: consumed, not shown
	}
	if !s.announced[h.SessionID] {
		s.flushEvents()
	}
	if !s.announced[h.SessionID] {
		img := transport.Image{SessionID: h.SessionID, Source: "?"}
		for _, im := range sub.Images() {
			if im.SessionID == h.SessionID {
				img = im
			}
		}
		s.early[h.SessionID]++
		s.printAvailable(img)
	}
	if s.msgs == 0 {
		s.start = time.Now()
	}
	s.msgs++
	s.bytes += int64(len(msg))
	s.last = time.Now()
	fmt.Fprintf(s.out, "Message to stream %d from session %d (%d@%d) <<%s>>\n", h.StreamID, h.SessionID, len(msg), h.Position, display(msg))
}

// loop polls until --count messages and the images' end, ctx's end, or a
// signal. It returns the exit code.
func (s *subscriber) loop(ctx context.Context, sub transport.Subscriber, drain time.Duration) int {
	handler := func(msg []byte, h transport.Header) { s.onMessage(sub, msg, h) }
	// The embedded driver wakes us when data arrives; a driver in another
	// process cannot: poll it every millisecond when idle.
	var notify <-chan struct{}
	var tick <-chan time.Time
	if n, ok := sub.(interface{ Notify() <-chan struct{} }); ok {
		notify = n.Notify()
	} else {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var drainC <-chan time.Time
	for {
		s.flushEvents()
		if s.count > 0 && s.msgs >= int64(s.count) {
			if drainC == nil {
				t := time.NewTimer(drain)
				defer t.Stop()
				drainC = t.C
			}
			// Done when every image is gone and its Unavailable line out
			// (the handler runs just after the image is removed).
			if s.open == 0 && len(sub.Images()) == 0 {
				return exitOK
			}
		}
		if sub.Poll(handler, 256) > 0 {
			continue
		}
		select {
		case <-notify:
		case <-tick:
		case <-s.wake:
		case <-drainC:
			return exitOK
		case <-ctx.Done():
			if s.count > 0 && s.msgs < int64(s.count) && !errors.Is(context.Cause(ctx), context.Canceled) {
				fmt.Fprintf(s.out, "Timed out after %d of %d messages\n", s.msgs, s.count)
				return exitFail
			}
			return exitOK
		}
	}
}

// display renders a message as the samples do (text), or as a hex prefix
// when it is not all printable ASCII.
func display(msg []byte) string {
	printable := true
	for _, b := range msg {
		if b < 0x20 || b > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		return string(msg)
	}
	const maxHex = 16
	if len(msg) <= maxHex {
		return "hex:" + hex.EncodeToString(msg)
	}
	return "hex:" + hex.EncodeToString(msg[:maxHex]) + "..."
}

func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// ---------------------------------------------------------------- publish

const publishUsage = `Usage: aeron-sample publish [flags]

Mirrors Aeron's C basic_publisher and streaming_publisher with an embedded
media driver. Messages are either text, "<text> <i>" (default
"Hello World! 0", "Hello World! 1", ... as basic_publisher), or with --size
S bytes whose first 8 bytes are a little-endian u64 counter from 0 and the
rest zero (as streaming_publisher -L S). --size takes a comma-separated list
to mix sizes: message i has the (i mod n)-th size. Messages above MTU-32
bytes are fragmented.

It waits for a subscriber (printing "offer failed: not connected" about once
a second) for up to --connect-timeout, retries on back pressure, prints
throughput (messages/s, MB/s), closes the publication (end of stream) and
lingers until the subscriber acknowledged the end of stream, at most
--linger, so the end of stream goes out. Exit 0 when every
message was offered, 1 when no subscriber connected (or the connection was
lost for --connect-timeout), 2 for bad flags.

Interop check against a real aeronmd (run aeronmd first):
  basic_subscriber -c 'aeron:udp?endpoint=127.0.0.1:40123' -s 1001
  aeron-sample publish --channel 'aeron:udp?endpoint=127.0.0.1:40123' --stream 1001 --messages 10 --interval 1s
  aeron-sample publish --channel 'aeron:udp?endpoint=127.0.0.1:40123|mtu=1408|term-length=16m' --stream 1001 --messages 1000 --size 20000

Flags:
`

func publish(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	var c common
	c.register(fs)
	messages := fs.Int("messages", 10, "messages to send (0: until SIGINT/SIGTERM)")
	sizes := fs.String("size", "", "message size in bytes (≥ 8; a comma-separated list mixes sizes): counter messages instead of text")
	text := fs.String("text", "Hello World!", `text of message i is "<text> <i>"`)
	interval := fs.Duration("interval", 0, "pause between messages (basic_publisher: 1s)")
	linger := fs.Duration("linger", 5*time.Second, "after closing, wait up to this long for the subscriber to acknowledge the end of stream")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "give up (exit 1) when no subscriber is connected for this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), publishUsage)
		fs.PrintDefaults()
	}
	if code, stop := parseFlags(fs, args, stdout, stderr); stop {
		return code
	}
	if err := c.validate(); err != nil {
		return failure("publish", err, stderr)
	}
	textSet := false
	fs.Visit(func(f *flag.Flag) { textSet = textSet || f.Name == "text" })
	if textSet && *sizes != "" {
		return failure("publish", usageError{"--size and --text are exclusive"}, stderr)
	}
	if *messages < 0 || *interval < 0 || *linger < 0 || *connectTimeout <= 0 {
		return failure("publish", usageError{"--messages, --interval and --linger must not be negative, --connect-timeout must be positive"}, stderr)
	}
	var sz []int
	if *sizes != "" {
		for _, f := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 8 {
				return failure("publish", usageError{fmt.Sprintf("--size %q: sizes must be integers ≥ 8", *sizes)}, stderr)
			}
			sz = append(sz, n)
		}
	}

	d, err := c.connect(stderr)
	if err != nil {
		return failure("publish", err, stderr)
	}
	defer d.Close()
	pub, err := d.addPublication(c.channel, int32(c.stream))
	if err != nil {
		return failure("publish", err, stderr)
	}
	for _, n := range sz {
		if n > pub.MaxMessageLength() {
			pub.Close()
			return failure("publish", usageError{fmt.Sprintf("--size %d exceeds the maximum message length %d (term-length/8)", n, pub.MaxMessageLength())}, stderr)
		}
	}
	from := "the media driver in " + c.aeronDir
	if la, ok := pub.(interface{ LocalAddr() string }); ok {
		from = la.LocalAddr()
	}
	fmt.Fprintf(stdout, "Publishing to channel %s on Stream ID %d (session %d, from %s)\n",
		c.channel, c.stream, pub.SessionID(), from)

	p := &publisher{out: stdout, pub: pub, connectTimeout: *connectTimeout}
	maxLen := 0
	for _, n := range sz {
		maxLen = max(maxLen, n)
	}
	buf := make([]byte, maxLen)
	verbose := sz == nil // per-message lines only in basic_publisher mode
	code := exitOK
	var sent, bytes int64
	var start, end time.Time
	for i := 0; *messages == 0 || i < *messages; i++ {
		var msg []byte
		if sz == nil {
			msg = []byte(*text + " " + strconv.Itoa(i))
		} else {
			msg = buf[:sz[i%len(sz)]]
			binary.LittleEndian.PutUint64(msg, uint64(i))
		}
		err := p.offer(ctx, msg)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stdout, "Interrupted after %d messages\n", sent)
				if *messages > 0 {
					code = exitFail
				}
			} else {
				fmt.Fprintf(stdout, "Offer %d failed: %v\n", i, err)
				code = exitFail
			}
			break
		}
		if sent == 0 {
			start = time.Now()
		}
		sent++
		bytes += int64(len(msg))
		end = time.Now()
		if verbose {
			if *messages > 0 {
				fmt.Fprintf(stdout, "Offering %d/%d - yay!\n", i+1, *messages)
			} else {
				fmt.Fprintf(stdout, "Offering %d - yay!\n", i+1)
			}
		}
		if *interval > 0 && (*messages == 0 || i+1 < *messages) {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
			}
		}
	}
	el := end.Sub(start)
	fmt.Fprintf(stdout, "Done sending: %d messages, %d bytes in %.3fs (%.0f msgs/s, %.2f MB/s)\n",
		sent, bytes, el.Seconds(), rate(float64(sent), el), rate(float64(bytes)/1e6, el))

	// Close: the driver drains what was offered, then sends end-of-stream
	// heartbeats until its linger ends; it retires the publication then.
	pub.Close()
	if sent == 0 || d.emb == nil {
		// A media driver in another process lingers on its own.
		return code
	}
	fmt.Fprintf(stdout, "Closed publication, lingering up to %v for the end of stream\n", *linger)
	deadline := time.Now().Add(*linger)
	for time.Now().Before(deadline) && d.emb.Stats().Publications > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if st := pub.(*transport.Publication).Stats(); st.SenderPosition < st.Position {
		fmt.Fprintf(stdout, "Linger ended with %d bytes not sent\n", st.Position-st.SenderPosition)
		if code == exitOK {
			code = exitFail
		}
	}
	return code
}

type publisher struct {
	out            io.Writer
	pub            transport.Publisher
	connectTimeout time.Duration
	// notConnectedSince is when offers started failing with ErrNotConnected
	// (zero while connected); lastNote when that was last printed.
	notConnectedSince, lastNote time.Time
}

// offer offers msg until it is accepted, retrying on back pressure and
// while not connected (up to connectTimeout). It idles as Aeron's
// BackoffIdleStrategy: a few yields, then short sleeps.
func (p *publisher) offer(ctx context.Context, msg []byte) error {
	idle := 0
	for {
		_, err := p.pub.Offer(msg)
		switch {
		case err == nil:
			p.notConnectedSince = time.Time{}
			return nil
		case errors.Is(err, transport.ErrBackPressured):
			p.notConnectedSince = time.Time{}
		case errors.Is(err, transport.ErrNotConnected):
			now := time.Now()
			if p.notConnectedSince.IsZero() {
				p.notConnectedSince = now
			}
			if now.Sub(p.notConnectedSince) >= p.connectTimeout {
				return fmt.Errorf("no subscriber connected within %v: %w", p.connectTimeout, err)
			}
			// The handshake takes a few ms: note only a real wait, then
			// about once a second.
			if now.Sub(p.notConnectedSince) >= 500*time.Millisecond && now.Sub(p.lastNote) >= time.Second {
				p.lastNote = now
				fmt.Fprintf(p.out, "offer failed: not connected (waiting up to %v for a subscriber)\n",
					(p.connectTimeout - now.Sub(p.notConnectedSince)).Round(time.Second))
			}
		default:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		idle++
		if idle <= 8 {
			runtime.Gosched()
		} else if p.notConnectedSince.IsZero() {
			time.Sleep(time.Microsecond)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
