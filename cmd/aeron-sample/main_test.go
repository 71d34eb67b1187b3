package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport/mediadriver"
)

// buildBinary builds the command (without -race, so the processes run at
// full speed) into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	bin := t.TempDir() + "/aeron-sample"
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// process is a running command whose stdout is collected line by line.
type process struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	mu     sync.Mutex
	lines  []string
	first  chan string // the first stdout line
	done   chan struct{}
	err    error
}

func start(t *testing.T, ctx context.Context, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.CommandContext(ctx, bin, args...), first: make(chan string, 1), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			if len(p.lines) == 1 {
				p.first <- sc.Text()
			}
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// wait returns the exit code and the stdout lines.
func (p *process) wait() (int, []string) {
	<-p.done
	return exitCode(p.err), p.lines
}

var (
	msgRe   = regexp.MustCompile(`^Message to stream 1001 from session (-?\d+) \((\d+)@(\d+)\) <<(.*)>>$`)
	availRe = regexp.MustCompile(`^Available image on (\S+) streamId=1001 sessionId=(-?\d+) from (\S+)$`)
	unavRe  = regexp.MustCompile(`^Unavailable image on (\S+) streamId=1001 sessionId=(-?\d+)$`)
	pubRe   = regexp.MustCompile(`^Publishing to channel \S+ on Stream ID 1001 \(session (-?\d+), from (\S+)\)$`)
)

// TestSubscribePublish runs one subscriber process and two publisher
// processes one after the other on 127.0.0.1: first counter messages of
// mixed sizes at MTU 1408 (fragmented ones included), then basic_publisher
// style text messages; the subscriber exits after all of them and the two
// images' end of stream.
func TestSubscribePublish(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // safety net only
	defer cancel()
	channel := fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d", freeUDPPort(t))
	const n, nText = 300, 3
	sizes := []int{8, 100, 1376, 1377, 20000, 3000, 64} // 1376 = MTU-32: the largest unfragmented
	var sizeList []string
	for _, s := range sizes {
		sizeList = append(sizeList, strconv.Itoa(s))
	}

	sub := start(t, ctx, bin, "subscribe", "--channel", channel, "--stream", "1001",
		"--count", strconv.Itoa(n+nText), "--drain", "2m", "--timeout", "2m")
	select {
	case l := <-sub.first: // printed once the endpoint is bound
		if !strings.HasPrefix(l, "Subscribing to channel "+channel) {
			t.Fatalf("subscriber's first line %q", l)
		}
	case <-sub.done:
		t.Fatalf("subscriber exited early: %v\n%s", sub.err, sub.stderr.String())
	}

	runPub := func(args ...string) (session, source string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"publish", "--stream", "1001", "--connect-timeout", "1m", "--linger", "2s"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if code := exitCode(err); code != 0 {
			t.Fatalf("publish %v: exit %d (%v)\n%s%s", args, code, err, out, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		m := pubRe.FindStringSubmatch(lines[0])
		if m == nil {
			t.Fatalf("publisher's first line %q", lines[0])
		}
		if !strings.Contains(string(out), "Done sending: ") || !strings.Contains(string(out), "Closed publication") {
			t.Fatalf("publisher output lacks its summary:\n%s", out)
		}
		return m[1], m[2]
	}
	sessA, srcA := runPub("--channel", channel+"|mtu=1408", "--messages", strconv.Itoa(n), "--size", strings.Join(sizeList, ","))
	sessB, srcB := runPub("--channel", channel, "--messages", strconv.Itoa(nText))

	code, lines := sub.wait()
	if code != 0 {
		t.Fatalf("subscriber exit %d (%v)\n%s\n%s", code, sub.err, strings.Join(lines, "\n"), sub.stderr.String())
	}

	// Per session: index of the Available line, the messages, index of the
	// Unavailable line.
	type session struct {
		avail, unavail, lastMsg int
		source                  string
		msgs                    [][]string
	}
	sessions := map[string]*session{}
	get := func(id string) *session {
		if sessions[id] == nil {
			sessions[id] = &session{avail: -1, unavail: -1}
		}
		return sessions[id]
	}
	total, totalBytes := 0, 0
	for i, l := range lines {
		switch {
		case msgRe.MatchString(l):
			m := msgRe.FindStringSubmatch(l)
			s := get(m[1])
			s.msgs = append(s.msgs, m)
			s.lastMsg = i
			total++
			ln, _ := strconv.Atoi(m[2])
			totalBytes += ln
		case availRe.MatchString(l):
			m := availRe.FindStringSubmatch(l)
			s := get(m[2])
			if s.avail >= 0 || m[1] != channel {
				t.Errorf("line %d: %q", i, l)
			}
			s.avail, s.source = i, m[3]
		case unavRe.MatchString(l):
			m := unavRe.FindStringSubmatch(l)
			s := get(m[2])
			if s.unavail >= 0 || m[1] != channel {
				t.Errorf("line %d: %q", i, l)
			}
			s.unavail = i
		}
	}
	out := strings.Join(lines, "\n")
	if total != n+nText || len(sessions) != 2 {
		t.Fatalf("%d messages from %d sessions, want %d from 2:\n%s", total, len(sessions), n+nText, out)
	}
	for _, c := range []struct{ id, src string }{{sessA, srcA}, {sessB, srcB}} {
		s := sessions[c.id]
		if s == nil {
			t.Fatalf("no lines for session %s:\n%s", c.id, out)
		}
		if s.avail < 0 || s.unavail < 0 || s.avail > s.unavail || len(s.msgs) > 0 && (s.avail > s.lastMsg || s.unavail < s.lastMsg) {
			t.Errorf("session %s: Available at line %d, last message at %d, Unavailable at %d", c.id, s.avail, s.lastMsg, s.unavail)
		}
		if s.source != c.src {
			t.Errorf("session %s: image from %s, publisher at %s", c.id, s.source, c.src)
		}
	}

	a := sessions[sessA]
	if len(a.msgs) != n {
		t.Fatalf("session A: %d messages, want %d", len(a.msgs), n)
	}
	prevPos := int64(0)
	for i, m := range a.msgs {
		ln, _ := strconv.Atoi(m[2])
		pos, _ := strconv.ParseInt(m[3], 10, 64)
		if want := sizes[i%len(sizes)]; ln != want {
			t.Errorf("message %d: length %d, want %d", i, ln, want)
		}
		if pos <= prevPos {
			t.Errorf("message %d: position %d after %d", i, pos, prevPos)
		}
		prevPos = pos
		h, ok := strings.CutPrefix(m[4], "hex:")
		b, err := hex.DecodeString(strings.TrimSuffix(h, "..."))
		if !ok || err != nil || len(b) < 8 {
			t.Fatalf("message %d: text %q", i, m[4])
		}
		if got := binary.LittleEndian.Uint64(b); got != uint64(i) {
			t.Errorf("message %d: counter %d", i, got)
		}
		if bytes.Count(b[8:], []byte{0}) != len(b)-8 {
			t.Errorf("message %d: bytes after the counter not zero: %x", i, b)
		}
	}
	b := sessions[sessB]
	for i, m := range b.msgs {
		if want := fmt.Sprintf("Hello World! %d", i); m[4] != want || m[2] != strconv.Itoa(len(want)) {
			t.Errorf("text message %d: %q", i, m[0])
		}
	}
	if len(b.msgs) != nText {
		t.Errorf("session B: %d messages, want %d", len(b.msgs), nText)
	}
	summary := fmt.Sprintf("Shutting down... received %d messages, %d bytes", n+nText, totalBytes)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, summary) {
		t.Errorf("last line %q, want prefix %q", last, summary)
	}
}

// TestUsage checks --help, bad flags (one line on stderr, exit 2) and a
// publisher that never connects (exit 1).
func TestUsage(t *testing.T) {
	bin := buildBinary(t)
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return exitCode(err), stdout.String(), stderr.String()
	}
	for _, args := range [][]string{
		{"--help"}, {"subscribe", "--help"}, {"publish", "-h"},
	} {
		code, out, errOut := run(args...)
		if code != 0 || !strings.Contains(out, "aeronmd") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{
		{},
		{"listen"},
		{"publish", "--bogus"},
		{"subscribe", "--stream", "x"},
		{"subscribe", "--count", "-1"},
		{"subscribe", "extra"},
		{"subscribe", "--log-level", "loud"},
		{"subscribe", "--stream", "4294967296"},
		{"publish", "--size", "4"},
		{"publish", "--size", "100", "--text", "hi"},
		{"publish", "--channel", "aeron:udp?endpoint=127.0.0.1:1|mtu=100"},
		{"publish", "--channel", "aeron:udp?endpoint=127.0.0.1:1", "--size", "1000000"},
	} {
		code, out, errOut := run(args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one stderr line", args, code, out, errOut)
		}
	}
	ch := fmt.Sprintf("aeron:udp?endpoint=127.0.0.1:%d", freeUDPPort(t))
	code, out, errOut := run("publish", "--channel", ch, "--connect-timeout", "300ms", "--linger", "0s")
	if code != 1 || !strings.Contains(out, "no subscriber connected within 300ms") {
		t.Errorf("unconnected publish: exit %d, stdout %q, stderr %q; want exit 1", code, out, errOut)
	}
}

// TestAeronDir: with --aeron-dir both commands are clients of a media
// driver (here the standalone driver, in-process) instead of embedding one.
func TestAeronDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "aeron")
	d, err := mediadriver.New(mediadriver.Config{Dir: dir, IPCTermLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var subOut, subErr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"subscribe", "--aeron-dir", dir, "--channel", "aeron:ipc", "--stream", "5",
			"--count", "3", "--timeout", "20s"}, &subOut, &subErr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(subOut.String(), "Subscribing") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var pubOut, pubErr bytes.Buffer
	if code := run([]string{"publish", "--aeron-dir", dir, "--channel", "aeron:ipc", "--stream", "5", "--messages", "3"}, &pubOut, &pubErr); code != 0 {
		t.Fatalf("publish exit %d\n%s%s", code, pubOut.String(), pubErr.String())
	}
	if code := <-done; code != 0 {
		t.Fatalf("subscribe exit %d\n%s%s", code, subOut.String(), subErr.String())
	}
	out := subOut.String()
	for i := 0; i < 3; i++ {
		if !strings.Contains(out, fmt.Sprintf("<<Hello World! %d>>", i)) {
			t.Errorf("subscriber output lacks message %d:\n%s", i, out)
		}
	}
	if !strings.Contains(pubOut.String(), "from the media driver in "+dir) {
		t.Errorf("publisher output:\n%s", pubOut.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
