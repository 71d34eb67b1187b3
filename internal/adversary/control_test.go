package adversary

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// The transport's own control frames (status messages, NAKs) carry no
// authentication: the Aeron wire protocol has none. What stands between an
// attacker and a publication is its session id (random, 32 bits) and the
// port it sends from; both are in the subscriber's log ("transport: image
// … session=… source=…") and in every data frame on the wire. These tests
// take them from the log, as a reader of the logs (or of the wire) would,
// and attack a live publisher's data publication.

// imageOf returns the session id and source address of the publisher's
// data stream as the subscriber logged its image.
func imageOf(t *testing.T, sub *proc) (int32, *net.UDPAddr) {
	t.Helper()
	re := regexp.MustCompile(`msg="transport: image" .*session=(-?\d+) stream=` + strconv.Itoa(int(pod.DataStream)) + ` source=(\S+)`)
	var m []string
	waitFor(t, "the subscriber's image in its log", 10*time.Second, func() bool {
		b, _ := os.ReadFile(sub.logPath)
		all := re.FindAllStringSubmatch(string(b), -1)
		if len(all) > 0 {
			m = all[len(all)-1]
		}
		return m != nil
	})
	s, err := strconv.ParseInt(m[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	src, err := net.ResolveUDPAddr("udp4", m[2])
	if err != nil {
		t.Fatal(err)
	}
	return int32(s), src
}

// Aeron control frames (little-endian): a status message (36 bytes, type
// 3) and a NAK (28 bytes, type 2).
func smFrame(flags byte, session, stream, termID, termOffset, window int32, receiverID int64) []byte {
	b := make([]byte, 36)
	binary.LittleEndian.PutUint32(b[0:], 36)
	b[5] = flags
	binary.LittleEndian.PutUint16(b[6:], 3)
	for i, v := range []int32{session, stream, termID, termOffset, window} {
		binary.LittleEndian.PutUint32(b[8+4*i:], uint32(v))
	}
	binary.LittleEndian.PutUint64(b[28:], uint64(receiverID))
	return b
}

func nakFrame(session, stream, termID, termOffset, length int32) []byte {
	b := make([]byte, 28)
	binary.LittleEndian.PutUint32(b[0:], 28)
	binary.LittleEndian.PutUint16(b[6:], 2)
	for i, v := range []int32{session, stream, termID, termOffset, length} {
		binary.LittleEndian.PutUint32(b[8+4*i:], uint32(v))
	}
	return b
}

// storm sends frames (round robin) to addr every pause until stop.
func storm(t *testing.T, to *net.UDPAddr, pause time.Duration, stop <-chan struct{}, frames ...[]byte) (*sync.WaitGroup, *int64) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	sent := new(int64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		for {
			for _, f := range frames {
				if _, err := c.WriteToUDP(f, to); err == nil {
					*sent++
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(pause):
			}
		}
	}()
	return &wg, sent
}

// finishes waits for the subscriber to end by itself and checks its
// stream exactly once, nothing skipped.
func finishes(t *testing.T, pr *pair, within time.Duration) {
	t.Helper()
	select {
	case <-pr.sub.done:
	case <-time.After(within):
		t.Fatalf("subscriber did not finish within %v (delivered up to seq %v of %d)", within,
			pr.sub.metric(t, `steadfast_logger_last_seq{publisher="publisher-1"}`), pr.total)
	}
	if pr.sub.exitErr != nil {
		t.Fatalf("subscriber exited: %v", pr.sub.exitErr)
	}
	f := readFinal(t, pr.sub)
	pt := f.Tally["publisher-1"]
	if r := pod.Check(pt, pr.total, nil); !r.OK() || pt.Skipped != 0 {
		t.Fatalf("final: %+v skipped %d", r, pt.Skipped)
	}
	if pr.pub.exited() {
		t.Fatalf("publisher exited: %v", pr.pub.exitErr)
	}
}

// TestForgedStatusMessages: status messages for the publisher's data
// publication from a receiver that does not exist, claiming consumption far
// beyond anything sent (the attacker does not know the term ids: four term
// ids a quarter of the id space apart, so at least two of them land ahead
// of the sender whatever its initial term id) with a full window, and setup
// requests, 1,000 rounds a second for 1.9 s, while the subscriber is stopped
// (SIGSTOP) for 0.4 s of it (less than the membership takes to suspect it,
// which would reopen the stream). A status message only tells the sender
// how far it may send; if it believed one claiming a position past anything
// sent, it would stop respecting the real receiver's window for good and
// send past it while the subscriber cannot read: the receiver drops what is
// beyond its window, and once the sender is more than half a term past the
// gap it cannot retransmit it. The outbox (2 Mi values, 16 MiB) lets the
// publisher run that far ahead. Before the sender refused such status
// messages the stream stalled here (the subscriber's image went unavailable
// and came back, the publisher's breaker cycled every 2 s, the stream had
// not ended 90 s later); now they are counted as invalid and the stream
// ends exactly once.
func TestForgedStatusMessages(t *testing.T) {
	needBinaries(t)
	pr := startPairSized(t, true, 3000, 1024, "1ms", "--outbox", "2097152")
	session, src := imageOf(t, pr.sub)
	var frames [][]byte
	for _, term := range []int32{0, 1 << 30, -1 << 31, -1 << 30} {
		frames = append(frames, smFrame(0, session, pod.DataStream, term, 0, 1<<30, 0x5eed))
	}
	frames = append(frames, smFrame(0x80, session, pod.DataStream, 0, 0, 0, 0x5eed)) // setup request
	const invalid = `steadfast_transport_invalid_datagrams_total{reason="publication"}`
	sms0, inv0 := pr.pub.metric(t, "steadfast_transport_status_messages_received_total"), max(0, pr.pub.metric(t, invalid))
	stop := make(chan struct{})
	wg, sent := storm(t, src, time.Millisecond, stop, frames...)
	time.Sleep(time.Second)
	_ = pr.sub.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(400 * time.Millisecond)
	_ = pr.sub.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	// Counted: every forged status message with a position (4 of every 5
	// sent; the old code refused only those landing before the initial
	// term, 2 of the 4); some slack for datagrams lost on the way.
	positioned := float64(*sent) * 4 / 5
	var inv float64
	waitFor(t, "the forged status messages counted as invalid", 10*time.Second, func() bool {
		inv = pr.pub.metric(t, invalid) - inv0
		return inv >= 0.7*positioned
	})
	t.Logf("sent %d forged status messages to %v (session %d): the publisher counted %v status messages, %v invalid",
		*sent, src, session, pr.pub.metric(t, "steadfast_transport_status_messages_received_total")-sms0, inv)
	if pr.pub.exited() || !pr.pub.healthy(t) {
		t.Fatalf("publisher down after the forged status messages: %v", pr.pub.exitErr)
	}
	finishes(t, pr, 90*time.Second)
}

// errNoCapture: this process may not open a packet socket (not root).
var errNoCapture = errors.New("no packet socket")

// sniffTerm reads the loopback's traffic (an AF_PACKET socket: root only)
// until it sees a data frame of session to port, and returns its term id
// and offset: what anyone on the path learns from one frame.
func sniffTerm(t *testing.T, port int, session int32) (int32, int32, error) {
	t.Helper()
	const ethPIP = 0x0800
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(ethPIP)))
	if err != nil {
		return 0, 0, errors.Join(errNoCapture, err)
	}
	defer syscall.Close(fd)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return 0, 0, errors.Join(errNoCapture, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: lo.Index}); err != nil {
		return 0, 0, errors.Join(errNoCapture, err)
	}
	tv := syscall.Timeval{Sec: 1}
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	buf := make([]byte, 65536)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		p := buf[:n]
		if len(p) < 20 || p[0]>>4 != 4 || p[9] != 17 {
			continue
		}
		ihl := int(p[0]&0xf) * 4
		if len(p) < ihl+8+32 || int(binary.BigEndian.Uint16(p[ihl+2:])) != port {
			continue
		}
		a := p[ihl+8:]
		if binary.LittleEndian.Uint16(a[6:]) != 1 || int32(binary.LittleEndian.Uint32(a[12:])) != session {
			continue
		}
		return int32(binary.LittleEndian.Uint32(a[20:])), int32(binary.LittleEndian.Uint32(a[8:])), nil
	}
	return 0, 0, errors.New("no data frame seen in 10 s")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestForgedNAKStorm: NAKs for the publisher's data publication, with the
// term id read off the wire, asking for the whole of the current term
// again, alternating between two offsets so that no retransmission lingers
// over the next one, 1,000 pairs a second for 3 s. Retransmissions go to
// the real subscriber (never to the attacker), which already has the data;
// they cost bandwidth and CPU. The stream must still end exactly once and
// the retransmitted bytes must stay bounded.
func TestForgedNAKStorm(t *testing.T) {
	needBinaries(t)
	pr := startPair(t, true)
	session, src := imageOf(t, pr.sub)
	_, dataPort, _ := net.SplitHostPort(pr.sub.data)
	port, _ := strconv.Atoi(dataPort)
	term, _, err := sniffTerm(t, port, session)
	if errors.Is(err, errNoCapture) {
		t.Skipf("cannot read the wire: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var frames [][]byte
	for _, tm := range []int32{term, term + 1, term - 1} {
		frames = append(frames, nakFrame(session, pod.DataStream, tm, 0, 1<<20), nakFrame(session, pod.DataStream, tm, 1<<19, 1<<19))
	}
	naks0, rtx0 := pr.pub.metric(t, "steadfast_transport_naks_received_total"), pr.pub.metric(t, "steadfast_transport_retransmits_total")
	bytes0 := pr.pub.metric(t, "steadfast_transport_bytes_sent_total")
	wg, sent := storm(t, src, time.Millisecond, stop, frames...)
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	naks, rtx := pr.pub.metric(t, "steadfast_transport_naks_received_total")-naks0, pr.pub.metric(t, "steadfast_transport_retransmits_total")-rtx0
	t.Logf("sent %d forged NAKs to %v (session %d, term %d): the publisher counted %v NAKs, %v retransmitted datagrams, %.1f MiB sent in the 3 s",
		*sent, src, session, term, naks, rtx, (pr.pub.metric(t, "steadfast_transport_bytes_sent_total")-bytes0)/(1<<20))
	if pr.pub.exited() || !pr.pub.healthy(t) {
		t.Fatalf("publisher down after the NAK storm: %v", pr.pub.exitErr)
	}
	finishes(t, pr, 90*time.Second)
}
