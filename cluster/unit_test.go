package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/steadfast-pods/steadfast/nodeid"
)

func TestMetaRoundTrip(t *testing.T) {
	m := meta{role: RolePublisher, epoch: 1 << 40, nodeID: strings.Repeat("n", 64),
		dataEndpoint: strings.Repeat("d", MaxEndpointLen), metricsAddr: strings.Repeat("m", MaxEndpointLen)}
	b := m.encode()
	if len(b) > maxMeta {
		t.Fatalf("largest meta is %d bytes, over memberlist's %d", len(b), maxMeta)
	}
	got, err := decodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, m)
	}
}

// TestMetaRoleOpaque: the cluster carries any non-zero role unchanged.
func TestMetaRoleOpaque(t *testing.T) {
	for _, r := range []Role{1, 2, 7, 255} {
		m, err := decodeMeta(meta{role: r, epoch: 1, nodeID: "a"}.encode())
		if err != nil || m.role != r {
			t.Errorf("role %d: %+v, %v", r, m, err)
		}
	}
}

func TestMetaRejectsGarbage(t *testing.T) {
	good := meta{role: RoleSubscriber, epoch: 3, nodeID: "sub-1", dataEndpoint: "10.0.0.1:4000"}.encode()
	bad := map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"role":        append([]byte{metaVersion, 0}, good[2:]...),
		"truncated":   good[:len(good)-3],
		"trailing":    append(append([]byte(nil), good...), 0),
		"bad id":      meta{role: RoleSubscriber, epoch: 1, nodeID: "a b"}.encode(),
		"empty id":    meta{role: RoleSubscriber, epoch: 1}.encode(),
		"huge length": {metaVersion, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"over 512":    bytes.Repeat([]byte{1}, 600),
		"bad uvarint": {metaVersion, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"long endpoint": meta{role: RoleSubscriber, epoch: 1, nodeID: "a",
			dataEndpoint: strings.Repeat("x", MaxEndpointLen+1)}.encode(),
		"epoch 2^64-1":  meta{role: RoleSubscriber, epoch: math.MaxUint64, nodeID: "a"}.encode(),
		"epoch too big": meta{role: RoleSubscriber, epoch: nodeid.MaxEpoch + 1, nodeID: "a"}.encode(),
		"dot-dot id":    meta{role: RoleSubscriber, epoch: 1, nodeID: ".."}.encode(),
	}
	for name, b := range bad {
		if _, err := decodeMeta(b); !errors.Is(err, errMeta) {
			t.Errorf("%s: decodeMeta = %v, want errMeta", name, err)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(meta{role: RoleSubscriber, epoch: 3, nodeID: "sub-1", dataEndpoint: "10.0.0.1:4000", metricsAddr: ":9100"}.encode())
	f.Add([]byte{metaVersion, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if again := m.encode(); !bytes.Equal(again, b) {
			// uvarints have one canonical form here only if minimal;
			// accept a non-minimal input but require a stable re-decode.
			if m2, err := decodeMeta(again); err != nil || m2 != m {
				t.Fatalf("re-decode of %x: %+v, %v", again, m2, err)
			}
		}
	})
}

func TestProtoRoundTrip(t *testing.T) {
	from := replyTo{name: "x#0011", addr: "127.0.0.1:7946"}
	p := pushMsg{req: 7, from: from, nodeID: "x", epoch: 3, snapshot: []byte("snap")}
	if got, err := decodePush(p.encode(), 100); err != nil || got.req != 7 || got.from != from || got.nodeID != "x" || got.epoch != 3 || string(got.snapshot) != "snap" {
		t.Fatalf("push: %+v, %v", got, err)
	}
	if _, err := decodePush(p.encode(), 3); !errors.Is(err, errTooBig) {
		t.Fatalf("push over limit: %v, want errTooBig", err)
	}
	a := pushAck{req: 9, status: ackRejected, reason: "stale", heldEpoch: 2, heldVersion: 5}
	if got, err := decodePushAck(a.encode()); err != nil || got != a {
		t.Fatalf("ack: %+v, %v", got, err)
	}
	g := gatherMsg{req: 1, from: from, nodeID: "y", want: true}
	if got, err := decodeGather(g.encode()); err != nil || got != g {
		t.Fatalf("gather: %+v, %v", got, err)
	}
	r := gatherRep{req: 2, highest: 4, heldEpoch: 3, heldVersion: 9, has: true, snapshot: []byte("s")}
	if got, err := decodeGatherRep(r.encode(), 10); err != nil || got.req != 2 || got.highest != 4 ||
		got.heldEpoch != 3 || got.heldVersion != 9 || !got.has || string(got.snapshot) != "s" {
		t.Fatalf("gather reply: %+v, %v", got, err)
	}
	for _, b := range [][]byte{nil, {'S'}, {'S', 2, 1}, {'X', 1, 1}} {
		if _, err := msgType(b); err == nil {
			t.Errorf("msgType(%x) accepted", b)
		}
	}
	enc := p.encode()
	for i := 3; i < len(enc); i++ {
		if _, err := decodePush(enc[:i], 100); err == nil {
			t.Errorf("truncated push of %d bytes accepted", i)
		}
	}
}

func FuzzDecodeMessages(f *testing.F) {
	from := replyTo{name: "x#0011", addr: "127.0.0.1:7946"}
	f.Add((&pushMsg{req: 7, from: from, nodeID: "x", epoch: 3, snapshot: []byte("snap")}).encode())
	f.Add((&pushAck{req: 9, reason: "ok"}).encode())
	f.Add((&gatherMsg{req: 1, from: from, nodeID: "y"}).encode())
	f.Add((&gatherRep{req: 2, highest: 4, snapshot: []byte("s")}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		// None may panic; limits hold.
		if m, err := decodePush(b, 64); err == nil && len(m.snapshot) > 64 {
			t.Fatal("push snapshot over limit")
		}
		_, _ = decodePushAck(b)
		_, _ = decodeGather(b)
		if m, err := decodeGatherRep(b, 64); err == nil && len(m.snapshot) > 64 {
			t.Fatal("gather snapshot over limit")
		}
		_, _ = msgType(b)
		_, _ = reqID(b)
	})
}

func TestParseKey(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		raw := bytes.Repeat([]byte{byte(n)}, n)
		for _, s := range []string{base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw)} {
			k, err := ParseKey(s)
			if err != nil || !bytes.Equal(k, raw) {
				t.Errorf("ParseKey(%q) = %x, %v", s, k, err)
			}
		}
	}
	if k, err := ParseKey(""); k != nil || err != nil {
		t.Errorf("empty key = %x, %v", k, err)
	}
	for _, s := range []string{"not base64!!", base64.StdEncoding.EncodeToString(make([]byte, 15)), base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		if _, err := ParseKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKey", s, err)
		}
	}
	t.Setenv(KeyEnvVar, base64.StdEncoding.EncodeToString(make([]byte, 16)))
	if k, err := KeyFrom(""); err != nil || len(k) != 16 {
		t.Errorf("KeyFrom env = %x, %v", k, err)
	}
	if _, err := KeyFrom("short"); !errors.Is(err, ErrBadKey) {
		t.Errorf("KeyFrom flag wins and is checked: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig(t, "n1")
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("empty config: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"bad id":       func(c *Config) { c.NodeID = "a b" },
		"no role":      func(c *Config) { c.Role = 0 },
		"no dir":       func(c *Config) { c.DataDir = "" },
		"long addr":    func(c *Config) { c.DataEndpoint = strings.Repeat("x", MaxEndpointLen+1) },
		"bad key":      func(c *Config) { c.ClusterKey = make([]byte, 10) },
		"no replicas":  func(c *Config) { c.Replicas = 0 },
		"no cap":       func(c *Config) { c.MaxSnapshotBytes = 0 },
		"no gather to": func(c *Config) { c.GatherTimeout = 0 },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", name, err)
		}
	}
	if r, err := ParseRole("publisher"); err != nil || r != RolePublisher || r.String() != "publisher" {
		t.Errorf("ParseRole = %v, %v", r, err)
	}
	if _, err := ParseRole("x"); err == nil {
		t.Error("ParseRole(x) accepted")
	}
}

func TestEpochTracker(t *testing.T) {
	tr := NewEpochTracker()
	if !tr.Observe("a", 1) || !tr.Observe("a", 3) || !tr.Accept("a", 3) {
		t.Fatal("rising epochs refused")
	}
	if tr.Accept("a", 2) {
		t.Fatal("lower epoch accepted")
	}
	if tr.Observe("a", 1) {
		t.Fatal("Observe of a lower epoch reported ok")
	}
	// A message's epoch never raises the tracker: a forged epoch 1000 is
	// let through to the pod's own checks but fences nobody.
	if !tr.Accept("a", 1000) || tr.Highest("a") != 3 || !tr.Accept("a", 3) {
		t.Fatalf("Accept recorded an epoch: highest %d", tr.Highest("a"))
	}
	// Epochs that would wrap are refused and never recorded.
	if tr.Observe("a", math.MaxUint64) || tr.Observe("a", nodeid.MaxEpoch+1) || tr.Highest("a") != 3 {
		t.Fatalf("Observe took an epoch above MaxEpoch: highest %d", tr.Highest("a"))
	}
	if tr.Highest("a") != 3 || tr.Highest("b") != 0 || tr.Rejects() != 1 {
		t.Fatalf("highest %d/%d rejects %d", tr.Highest("a"), tr.Highest("b"), tr.Rejects())
	}
}

func TestEventsBoundedAndCoalesced(t *testing.T) {
	c := &Cluster{}
	c.mu.Lock()
	for i := range maxPendingEvents + 10 {
		name := "n#" + strconv.Itoa(i)
		c.emit(Event{Kind: EventJoined, Member: Member{Name: name}})
		c.emit(Event{Kind: EventUpdated, Member: Member{Name: name}}) // coalesces
	}
	c.mu.Unlock()
	ev := c.Events()
	if len(ev) != maxPendingEvents || c.st.eventsDropped.Load() != 10 {
		t.Fatalf("%d events kept, %d dropped", len(ev), c.st.eventsDropped.Load())
	}
	if ev[0].Member.Name != "n#10" || ev[0].Kind != EventUpdated {
		t.Fatalf("oldest kept %+v", ev[0])
	}
	if len(c.Events()) != 0 {
		t.Fatal("Events did not drain")
	}
}
