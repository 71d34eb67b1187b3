package adversary

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"github.com/steadfast-pods/steadfast/internal/freeport"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/internal/auth"
	"github.com/steadfast-pods/steadfast/internal/pod"
	"github.com/steadfast-pods/steadfast/transport"
)

// binDir holds the pod binaries, built once without -race.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	d, err := os.MkdirTemp("", "steadfast-adversary-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", d+string(os.PathSeparator),
		"github.com/steadfast-pods/steadfast/cmd/publisher", "github.com/steadfast-pods/steadfast/cmd/subscriber")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, b)
		os.RemoveAll(d)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func needBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("real pod processes; skipped with -short")
	}
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 (gossip uses
// one of each), or fails the test.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.TCPUDP()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// proc is one pod process.
type proc struct {
	name, dir, logPath    string
	gossip, data, metrics string
	cmd                   *exec.Cmd
	done                  chan struct{} // closed when the process exited
	exitErr               error
}

func startProc(t *testing.T, role, name string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{
		name: name, dir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, name+".log"),
		gossip: addr(freePort(t)), data: addr(freePort(t)), metrics: addr(freePort(t)),
		done: make(chan struct{}),
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--node-id", name, "--data-dir", p.dir, "--bind", p.gossip, "--data-endpoint", p.data,
		"--metrics-addr", p.metrics, "--membership", "local", "--snapshot-interval", "100ms"}, args...)
	p.cmd = exec.Command(filepath.Join(binDir, role), all...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // nothing from the test's environment (no CLUSTER_KEY)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("--- %s log (last 30 lines)\n%s", name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns one sample's value (name with labels as scraped), or -1.
func (p *proc) metric(t *testing.T, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(p.scrape(t))
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (p *proc) healthy(t *testing.T) bool {
	resp, err := http.Get("http://" + p.metrics + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// pair is a publisher and a subscriber streaming total values.
type pair struct {
	pub, sub *proc
	total    uint64
	key      []byte // nil: --insecure
}

const (
	beats = 4000
	batch = 10
)

func startPair(t *testing.T, keyed bool) *pair {
	t.Helper()
	return startPairSized(t, keyed, beats, batch, "1ms")
}

// startPairSized starts a pair streaming nBeats beats of nBatch values, one
// beat every rate, with pubExtra added to the publisher's flags.
func startPairSized(t *testing.T, keyed bool, nBeats, nBatch int, rate string, pubExtra ...string) *pair {
	t.Helper()
	pr := &pair{total: uint64(nBeats * nBatch)}
	sec := []string{"--insecure"}
	if keyed {
		pr.key = make([]byte, 32)
		_, _ = rand.Read(pr.key)
		sec = []string{"--cluster-key", base64.StdEncoding.EncodeToString(pr.key)}
	}
	pr.pub = startProc(t, "publisher", "publisher-1", append(append([]string{"--beats", strconv.Itoa(nBeats), "--batch", strconv.Itoa(nBatch),
		"--rate", rate, "--min-subscribers", "1"}, sec...), pubExtra...)...)
	pr.sub = startProc(t, "subscriber", "subscriber-1", append([]string{"--join", pr.pub.gossip}, sec...)...)
	waitFor(t, "the stream under way", 60*time.Second, func() bool {
		for _, p := range []*proc{pr.pub, pr.sub} {
			if p.exited() { // e.g. a port taken between freePort and the bind
				t.Fatalf("%s exited before the stream got under way: %v", p.name, p.exitErr)
			}
		}
		return pr.sub.metric(t, `steadfast_logger_last_seq{publisher="publisher-1"}`) > float64(pr.total/20)
	})
	return pr
}

// attacker opens its own transport sessions to the pods' endpoints.
type attacker struct {
	t *testing.T
	d *transport.Driver
}

func newAttacker(t *testing.T) *attacker {
	d, err := transport.NewDriver(transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &attacker{t: t, d: d}
}

// send offers msgs, in order, on a new session to endpoint/stream.
func (a *attacker) send(endpoint string, stream int32, msgs ...[]byte) {
	a.t.Helper()
	pub, err := a.d.AddPublication("aeron:udp?endpoint="+endpoint, stream)
	if err != nil {
		a.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range msgs {
		for {
			_, err := pub.Offer(m)
			if err == nil {
				break
			}
			if !errors.Is(err, transport.ErrNotConnected) && !errors.Is(err, transport.ErrBackPressured) || time.Now().After(deadline) {
				a.t.Fatalf("offer to %s/%d: %v", endpoint, stream, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Close drains what was offered before the session ends.
	_ = pub.Close()
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func hello(id string, epoch, seq uint64) []byte {
	return must(codec.AppendControl(nil, &codec.Control{Type: codec.ControlHello, NodeID: id, Epoch: epoch, Seq: seq}))
}

// released is a publisher's notice that it no longer holds its values up
// to seq: believed, the subscriber gives up the values it lacks below seq
// as lost (what a forged hello did in issue 14 §1, before this notice had
// its own type).
func released(id string, epoch, seq uint64) []byte {
	return must(codec.AppendControl(nil, &codec.Control{Type: codec.ControlReleased, NodeID: id, Epoch: epoch, Seq: seq}))
}

func ack(subEpoch, pubEpoch, committed uint64) []byte {
	return must(codec.AppendAck(nil, &codec.Ack{Subscriber: "subscriber-1", SubscriberEpoch: subEpoch, Publisher: "publisher-1", PublisherEpoch: pubEpoch, Committed: committed}))
}

func garbageTrailer(msg []byte) []byte {
	t := make([]byte, auth.TrailerLen)
	_, _ = rand.Read(t)
	return append(msg, t...)
}

// TestDataPlaneAttacks sends the data-plane attacks of issue 14 at a live
// publisher and subscriber, with a cluster key and with --insecure: none
// may change state, each is counted, both pods stay up, and the stream
// still ends exactly once with nothing skipped.
func TestDataPlaneAttacks(t *testing.T) {
	needBinaries(t)
	for _, keyed := range []bool{true, false} {
		t.Run(map[bool]string{true: "key", false: "insecure"}[keyed], func(t *testing.T) {
			pr := startPair(t, keyed)
			if !keyed {
				// §6: no key, no silence: each pod says what it exposes.
				for _, p := range []*proc{pr.pub, pr.sub} {
					if b, _ := os.ReadFile(p.logPath); !bytes.Contains(b, []byte(`level=WARN msg="pod: running --insecure`)) {
						t.Fatalf("%s runs --insecure without a warning", p.name)
					}
				}
			}
			pe := uint64(pr.pub.metric(t, "steadfast_epoch"))
			se := uint64(pr.sub.metric(t, "steadfast_epoch"))
			if pe < 1 || se < 1 {
				t.Fatalf("epochs %d %d", pe, se)
			}
			seal := func(msg []byte) []byte { // a trailer only where one is expected
				if keyed {
					return garbageTrailer(msg)
				}
				return msg
			}
			forgedBatch := codec.AppendBatch(nil, &codec.Batch{Publisher: "publisher-1", Epoch: 1000, FirstSeq: 1, Values: []uint64{7, 8, 9}})
			toSub := [][]byte{
				seal(forgedBatch),                             // §1: a batch with epoch 1000 (would freeze the stream)
				seal(hello("publisher-1", pe+1, 1e8)),         // a hello from a newer, not live, incarnation
				seal(released("publisher-1", pe+1, 1e8)),      // a release notice from a newer, not live, incarnation
				seal(hello("intruder", 1, 1e8)),               // an unknown node
				[]byte("\x03garbage that decodes as nothing"), // garbage
			}
			toPub := [][]byte{
				seal(ack(se+5, pe, 1e9)),               // an ack from a not live incarnation
				seal(hello("subscriber-1", se+5, 1e9)), // a hello from it
			}
			wantSub, wantPub := map[string]float64{"unknown_sender": 4}, map[string]float64{"unknown_sender": 2}
			if keyed {
				// The live incarnations' own ids and epochs, with forged tags.
				toSub = append(toSub,
					seal(hello("publisher-1", pe, 1e8)),    // §1: a hello with seq 1e8
					seal(released("publisher-1", pe, 1e8)), // §1: its effect today: would give up the stream as lost
					seal(codec.AppendBatch(nil, &codec.Batch{Publisher: "publisher-1", Epoch: pe, FirstSeq: 1 << 40, Values: []uint64{1}})))
				toPub = append(toPub,
					seal(ack(se, pe, 1e9)),               // §1: an ack releasing the whole outbox
					seal(hello("subscriber-1", se, 1e9))) // a hello moving the replay point past the end
				// A replay: a genuine message (sealed with the key, harmless:
				// a hello with seq 0) sent twice. The second copy is refused
				// (the first too if the publisher's own message with that
				// counter got there first).
				keys, err := auth.NewKeys(pr.key)
				if err != nil {
					t.Fatal(err)
				}
				sealer, _ := keys.NewSealer(auth.Peer{ID: "publisher-1", Epoch: pe})
				genuine := must(sealer.Seal(hello("publisher-1", pe, 0), auth.Peer{ID: "subscriber-1", Epoch: se}))
				toSub = append(toSub, genuine, genuine)
				wantSub["unauthenticated"], wantPub["unauthenticated"] = 4, 2
			}
			a := newAttacker(t)
			a.send(pr.sub.data, pod.DataStream, toSub...)
			a.send(pr.pub.data, pod.AckStream, toPub...)

			for _, v := range []struct {
				p    *proc
				want map[string]float64
			}{{pr.sub, wantSub}, {pr.pub, wantPub}} {
				// Which reason a forged tag is counted under depends on the
				// view at that moment (a member that flapped under load is
				// unknown_sender): the sum is what every attack adds to.
				var n float64
				for _, w := range v.want {
					n += w
				}
				waitFor(t, fmt.Sprintf("%s: %v rejections", v.p.name, n), 15*time.Second, func() bool {
					got := 0.0
					for _, reason := range []string{"unknown_sender", "unauthenticated"} {
						got += max(0, v.p.metric(t, `steadfast_data_rejected_total{reason="`+reason+`"}`))
					}
					return got >= n
				})
			}
			waitFor(t, "subscriber counts the garbage", 10*time.Second, func() bool { return pr.sub.metric(t, "steadfast_bad_messages_total") >= 1 })
			// No state change, both alive.
			for _, p := range []*proc{pr.pub, pr.sub} {
				if p.exited() || !p.healthy(t) {
					t.Fatalf("%s is down after the attacks: %v", p.name, p.exitErr)
				}
			}
			if v := pr.sub.metric(t, `steadfast_logger_lost_values{publisher="publisher-1"}`); v != 0 {
				t.Fatalf("subscriber gave up %v values", v)
			}
			if v := pr.pub.metric(t, `steadfast_subscriber_acked_seq{subscriber="subscriber-1"}`); v > float64(pr.total) {
				t.Fatalf("publisher took a forged ack: acked %v", v)
			}
			if v := pr.sub.metric(t, "steadfast_stale_epoch_dropped_total"); v > 0 {
				t.Fatalf("subscriber dropped %v real values as stale (a forged epoch was adopted)", v)
			}
			// Nothing lost: the subscriber finishes by itself, exactly once.
			select {
			case <-pr.sub.done:
			case <-time.After(90 * time.Second):
				t.Fatal("subscriber did not finish")
			}
			if pr.sub.exitErr != nil {
				t.Fatalf("subscriber exited: %v", pr.sub.exitErr)
			}
			f := readFinal(t, pr.sub)
			pt := f.Tally["publisher-1"]
			if r := pod.Check(pt, pr.total, nil); !r.OK() || pt.Skipped != 0 || f.Epoch != se {
				t.Fatalf("final: %+v skipped %d epoch %d (want %d)", r, pt.Skipped, f.Epoch, se)
			}
			if pr.pub.exited() {
				t.Fatalf("publisher exited: %v", pr.pub.exitErr)
			}
		})
	}
}

// TestNoKeyNoStart: a pod given no cluster key refuses to start (exit 2,
// saying why) unless --insecure: nothing listens unauthenticated by
// accident.
func TestNoKeyNoStart(t *testing.T) {
	needBinaries(t)
	for _, role := range []string{"publisher", "subscriber"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, role), "--data-dir", t.TempDir(), "--bind", "127.0.0.1:0")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != pod.ExitUsage || !strings.Contains(stderr.String(), "--insecure") {
			t.Fatalf("%s without a key: %v, stderr %q", role, err, stderr.String())
		}
	}
}
