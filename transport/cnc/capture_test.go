package cnc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// statLine is one counter as Aeron's AeronStat printed it.
type statLine struct {
	id    int32
	value int64
	label string
}

var statRE = regexp.MustCompile(`^\s*(\d+) :\s+([\d,-]+) - (.*)$`)

func readStat(t *testing.T, dir string) (header string, lines []statLine) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", dir, "aeronstat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if header == "" {
			header = line
			continue
		}
		m := statRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		id, _ := strconv.Atoi(m[1])
		v, err := strconv.ParseInt(strings.ReplaceAll(m[2], ",", ""), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, statLine{int32(id), v, m[3]})
	}
	if len(lines) == 0 {
		t.Fatalf("%s: no counters parsed", dir)
	}
	return header, lines
}

// typeByLabel gives the counter type Aeron's C driver uses for each label
// prefix (system counters have type 0).
func typeByLabel(label string) int32 {
	for _, p := range []struct {
		prefix string
		typ    int32
	}{
		{"rcv-pos:", TypeReceiverPosition}, {"sub-pos:", TypeSubscriberPosition},
		{"snd-lmt:", TypeSenderLimit}, {"pub-lmt:", TypePublisherLimit},
		{"snd-local-sockaddr:", TypeLocalSockAddr}, {"rcv-local-sockaddr:", TypeLocalSockAddr},
		{"pub-pos (sampled):", TypePublisherPosition}, {"rcv-channel:", TypeReceiveChannelStatus},
		{"snd-channel:", TypeSendChannelStatus}, {"client-heartbeat:", TypeClientHeartbeat},
		{"snd-bpe:", TypeSenderBPE}, {"rcv-hwm:", TypeReceiverHWM}, {"snd-pos:", TypeSenderPosition},
	} {
		if strings.HasPrefix(label, p.prefix) {
			return p.typ
		}
	}
	return TypeSystem
}

// TestCaptureCounters: every counter AeronStat printed reads back from
// cnc.dat with the same id, label and value, the type Aeron gives that kind
// of counter, and (for stream positions and heartbeats) a key that agrees
// with the label; every id AeronStat left out is not allocated.
//
// 1-idle's aeronstat.txt was printed 33 s after its cnc.dat was copied
// (1.5 s after the driver started; its header's time says so), by when two
// clients had come and gone: there only the system counters, which both
// hold, are compared, by id, type and label, not value.
func TestCaptureCounters(t *testing.T) {
	for _, dir := range []string{"1-idle", "2-udp", "3-ipc"} {
		t.Run(dir, func(t *testing.T) {
			sameMoment := dir != "1-idle"
			c, err := Open(loadGz(t, dir+"/cnc.dat.gz"))
			if err != nil {
				t.Fatal(err)
			}
			header, lines := readStat(t, dir)
			if want := fmt.Sprintf("(CnC v%s), pid %d,", VersionString(c.Meta.Version), c.Meta.Pid); !strings.Contains(header, want) {
				t.Errorf("header %q lacks %q", header, want)
			}
			listed := map[int32]bool{}
			for _, l := range lines {
				if !sameMoment && typeByLabel(l.label) != TypeSystem {
					continue
				}
				listed[l.id] = true
				got, err := c.Counters.Read(l.id)
				if err != nil {
					t.Fatalf("counter %d: %v", l.id, err)
				}
				if got.State != CounterAllocated {
					t.Errorf("counter %d state %d", l.id, got.State)
				}
				if got.Label != l.label {
					t.Errorf("counter %d label %q, AeronStat %q", l.id, got.Label, l.label)
				}
				if sameMoment && got.Value != l.value {
					t.Errorf("counter %d value %d, AeronStat %d", l.id, got.Value, l.value)
				}
				if want := typeByLabel(l.label); got.TypeID != want {
					t.Errorf("counter %d (%s) type %d, want %d", l.id, l.label, got.TypeID, want)
				}
				checkKey(t, got)
			}
			var seen int
			c.Counters.ForEach(func(ctr Counter, err error) {
				if err != nil {
					t.Errorf("ForEach: %v", err)
				}
				seen++
				if !listed[ctr.ID] {
					t.Errorf("counter %d allocated but not printed by AeronStat", ctr.ID)
				}
			})
			if seen != len(listed) || len(listed) < 40 {
				t.Errorf("ForEach saw %d counters, AeronStat printed %d", seen, len(listed))
			}
		})
	}
}

// checkKey cross-checks a counter's key with its label: stream counters
// carry registration id, session id, stream id and channel; heartbeats the
// client id.
func checkKey(t *testing.T, c Counter) {
	t.Helper()
	switch c.TypeID {
	case TypeReceiverPosition, TypeSubscriberPosition, TypeSenderLimit, TypePublisherLimit,
		TypePublisherPosition, TypeSenderBPE, TypeReceiverHWM, TypeSenderPosition:
		reg := int64(binary.LittleEndian.Uint64(c.Key))
		sess := int32(binary.LittleEndian.Uint32(c.Key[8:]))
		stream := int32(binary.LittleEndian.Uint32(c.Key[12:]))
		chLen := int(binary.LittleEndian.Uint32(c.Key[16:]))
		if chLen > len(c.Key)-20 {
			t.Fatalf("counter %d channel length %d", c.ID, chLen)
		}
		ch := string(c.Key[20 : 20+chLen])
		want := fmt.Sprintf(": %d %d %d %s", reg, sess, stream, ch)
		if !strings.Contains(c.Label, want) {
			t.Errorf("counter %d key %q not in label %q", c.ID, want, c.Label)
		}
		if c.RegistrationID != reg && c.TypeID != TypeSubscriberPosition {
			// sub-pos records the subscription's registration id in its key
			// and the image's correlation id in its value record.
			t.Logf("counter %d registration id %d, key %d", c.ID, c.RegistrationID, reg)
		}
	case TypeClientHeartbeat:
		id := int64(binary.LittleEndian.Uint64(c.Key))
		if !strings.HasPrefix(c.Label, fmt.Sprintf("client-heartbeat: id=%d ", id)) {
			t.Errorf("heartbeat counter %d key %d, label %q", c.ID, id, c.Label)
		}
	}
}

// TestCaptureRingAndHeader checks the CnC header and the to-driver ring
// buffer's trailer against what the captures are known to hold.
func TestCaptureRingAndHeader(t *testing.T) {
	for _, tc := range []struct {
		dir        string
		tail, corr int64
	}{{"1-idle", 0, 1}, {"2-udp", 520, 17}, {"3-ipc", 672, 22}} {
		c, err := Open(loadGz(t, tc.dir+"/cnc.dat.gz"))
		if err != nil {
			t.Fatal(err)
		}
		m := c.Meta
		if m.Version != Version || m.ToDriverLength != 1<<20+RingTrailerLength ||
			m.ToClientsLength != 1<<20+BroadcastTrailerLength || m.CountersMetadataLength != 4<<20 ||
			m.CountersValuesLength != 1<<20 || m.ErrorLogLength != 1<<20 ||
			m.ClientLivenessTimeoutNs != 10e9 || m.Pid != 24514 {
			t.Errorf("%s header %+v", tc.dir, m)
		}
		if got := FileLength(m, 4096); got != len(c.Raw()) {
			t.Errorf("%s file length %d, computed %d", tc.dir, len(c.Raw()), got)
		}
		rb := c.ToDriver
		if rb.Tail() != tc.tail || rb.Head() != tc.tail || rb.Correlation() != tc.corr {
			t.Errorf("%s ring tail %d head %d correlation %d", tc.dir, rb.Tail(), rb.Head(), rb.Correlation())
		}
		if hb := rb.ConsumerHeartbeat(); hb < m.StartTimestampMs || hb > m.StartTimestampMs+60_000 {
			t.Errorf("%s consumer heartbeat %d vs start %d", tc.dir, hb, m.StartTimestampMs)
		}
		// The driver zeroes what it consumed: nothing left to read.
		n, err := rb.Read(func(int32, []byte) { t.Error("record in a consumed ring") }, 100)
		if n != 0 || err != nil {
			t.Errorf("%s read %d %v", tc.dir, n, err)
		}
	}
}

// TestCaptureBroadcast decodes every response the driver broadcast in the
// IPC capture (which holds the UDP session's too) and checks the ones the
// samples' output pins down.
func TestCaptureBroadcast(t *testing.T) {
	c, err := Open(loadGz(t, "3-ipc/cnc.dat.gz"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ScanBroadcast(c.ToClients)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 34 {
		t.Errorf("%d records, want 34", len(recs))
	}
	byType := map[int32]int{}
	var pubs []PublicationReady
	var imgs []ImageReady
	for _, r := range recs {
		v, err := DecodeResponse(r.TypeID, r.Msg)
		if err != nil {
			t.Fatalf("record at %d type %#x: %v", r.Offset, r.TypeID, err)
		}
		byType[r.TypeID]++
		switch x := v.(type) {
		case PublicationReady:
			pubs = append(pubs, x)
		case ImageReady:
			imgs = append(imgs, x)
		}
	}
	want := map[int32]int{RspOnCounterReady: 8, RspOnSubscriptionReady: 4, RspOnPublicationReady: 4,
		RspOnAvailableImage: 4, RspOnOperationSuccess: 3, RspOnUnavailableImage: 3,
		RspOnClientTimeout: 4, RspOnUnavailableCounter: 4}
	for typ, n := range want {
		if byType[typ] != n {
			t.Errorf("type %#x: %d records, want %d (all: %v)", typ, byType[typ], n, byType)
		}
	}
	udpPub := PublicationReady{CorrelationID: 15, RegistrationID: 15, SessionID: 516162630, StreamID: 1001,
		PositionLimitCounter: 43, ChannelStatusCounter: 50, LogFile: "/dev/shm/cap/publications/15.logbuffer"}
	ipcPub := PublicationReady{CorrelationID: 21, RegistrationID: 21, SessionID: 516162631, StreamID: 1002,
		PositionLimitCounter: 55, ChannelStatusCounter: -1, LogFile: "/dev/shm/cap/publications/21.logbuffer"}
	if len(pubs) != 4 || pubs[2] != udpPub || pubs[3] != ipcPub {
		t.Errorf("publication ready: %+v", pubs)
	}
	udpImg := ImageReady{CorrelationID: 16, SessionID: 516162630, StreamID: 1001, SubscriptionID: 13,
		SubscriberPositionID: 41, LogFile: "/dev/shm/cap/images/16.logbuffer", SourceIdentity: "127.0.0.1:50255"}
	ipcImg := ImageReady{CorrelationID: 21, SessionID: 516162631, StreamID: 1002, SubscriptionID: 19,
		SubscriberPositionID: 54, LogFile: "/dev/shm/cap/publications/21.logbuffer", SourceIdentity: "aeron:ipc"}
	if len(imgs) != 4 || imgs[2] != udpImg || imgs[3] != ipcImg {
		t.Errorf("available image: %+v", imgs)
	}
	// The receiver starts at the latest record (the UDP image going away).
	rcv, err := NewReceiver(c.ToClients)
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	for {
		ok, err := rcv.Receive(func(typ int32, msg []byte) { got = append(got, typ) })
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	if len(got) != 1 || got[0] != RspOnUnavailableImage {
		t.Errorf("receiver from latest got %#x", got)
	}
}

// TestCaptureLogBuffers: both UDP logs (publication and image) and the IPC
// publication: metadata, default header and the four frames.
func TestCaptureLogBuffers(t *testing.T) {
	for _, tc := range []struct {
		file            string
		session, stream int32
		initialTermID   int32
		tails           [3]int64
		connected       bool
	}{
		{"2-udp/publications/15.logbuffer.gz", 516162630, 1001, -134877427,
			[3]int64{int64(-134877427)<<32 | 256, int64(-134877427-2) << 32, int64(-134877427-1) << 32}, true},
		{"2-udp/images/16.logbuffer.gz", 516162630, 1001, -134877427, [3]int64{}, false},
		{"3-ipc/publications/21.logbuffer.gz", 516162631, 1002, 1812036161,
			[3]int64{int64(1812036161)<<32 | 256, int64(1812036161-2) << 32, int64(1812036161-1) << 32}, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := loadGz(t, tc.file)
			l, err := OpenLog(b)
			if err != nil {
				t.Fatal(err)
			}
			if l.TermLength != 65536 || l.MTU != 1408 || l.PageSize != 4096 || l.InitialTermID != tc.initialTermID ||
				len(b) != LogLength(65536, 4096) || l.PositionBitsToShift() != 16 {
				t.Errorf("metadata term %d mtu %d page %d initial %d file %d", l.TermLength, l.MTU, l.PageSize, l.InitialTermID, len(b))
			}
			for i, want := range tc.tails {
				if got := l.RawTail(i); got != want {
					t.Errorf("tail[%d] %#x, want %#x", i, got, want)
				}
			}
			if l.ActiveTermCount() != 0 || l.IsConnected() != tc.connected || l.EndOfStreamPosition() != 1<<63-1 {
				t.Errorf("active term count %d connected %v eos %d", l.ActiveTermCount(), l.IsConnected(), l.EndOfStreamPosition())
			}
			hdr := make([]byte, DataHeaderLength)
			hdr[FrameOffFlags] = FlagsUnfrag
			hdr[FrameOffType] = FrameTypeData
			binary.LittleEndian.PutUint32(hdr[FrameOffSession:], uint32(tc.session))
			binary.LittleEndian.PutUint32(hdr[FrameOffStream:], uint32(tc.stream))
			binary.LittleEndian.PutUint32(hdr[FrameOffTermID:], uint32(tc.initialTermID))
			if !bytes.Equal(l.DefaultHeader(), hdr) {
				t.Errorf("default header %x, want %x", l.DefaultHeader(), hdr)
			}
			frames, err := ScanTerm(l.Terms[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 4 {
				t.Fatalf("%d frames", len(frames))
			}
			for i, f := range frames {
				want := fmt.Sprintf("Hello World! %d", i)
				if string(f.Payload) != want || f.Offset != 64*i || int(f.TermOffset) != 64*i || f.Length != 46 ||
					f.Flags != FlagsUnfrag || f.Type != FrameTypeData || f.SessionID != tc.session ||
					f.StreamID != tc.stream || f.TermID != tc.initialTermID {
					t.Errorf("frame %d: %+v %q", i, f, f.Payload)
				}
			}
			if pos := l.Position(tc.initialTermID, 256); pos != 256 {
				t.Errorf("position %d", pos)
			}
			for i := 1; i < 3; i++ {
				if fr, err := ScanTerm(l.Terms[i]); len(fr) != 0 || err != nil {
					t.Errorf("term %d: %d frames %v", i, len(fr), err)
				}
			}
		})
	}
}

// TestInitLogMatchesCapture: a log laid out by InitLog with the capture's
// parameters has the capture's metadata fields, default header and tails.
func TestInitLogMatchesCapture(t *testing.T) {
	capt := loadGz(t, "3-ipc/publications/21.logbuffer.gz")
	want, err := OpenLog(capt)
	if err != nil {
		t.Fatal(err)
	}
	b := AlignedCopy(make([]byte, len(capt)))
	l, err := InitLog(b, LogParams{TermLength: 65536, PageSize: 4096, MTU: 1408, InitialTermID: 1812036161,
		SessionID: 516162631, StreamID: 1002, CorrelationID: 21})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.DefaultHeader(), want.DefaultHeader()) {
		t.Errorf("default header %x, want %x", l.DefaultHeader(), want.DefaultHeader())
	}
	for i := 1; i < 3; i++ {
		if l.RawTail(i) != want.RawTail(i) {
			t.Errorf("tail %d: %#x want %#x", i, l.RawTail(i), want.RawTail(i))
		}
	}
	for _, off := range []int{LogOffCorrelationID, LogOffInitialTermID, LogOffDefaultHdrLen, LogOffMTU, LogOffTermLength, LogOffPageSize, LogOffEndOfStream} {
		if !bytes.Equal(l.Meta[off:off+4], want.Meta[off:off+4]) {
			t.Errorf("metadata at %d: %x want %x", off, l.Meta[off:off+4], want.Meta[off:off+4])
		}
	}
}
