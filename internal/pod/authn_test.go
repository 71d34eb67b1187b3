package pod

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/internal/auth"
)

var testKey = []byte("steadfast-test-key-of-32-bytes!!")

// metricValue returns the value of one sample (name with its labels, as
// scraped) or 0 when absent.
func metricValue(t *testing.T, scraped, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(scraped)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) && !strings.HasPrefix(l, "#") {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func randomTrailer() []byte {
	b := make([]byte, auth.TrailerLen)
	_, _ = rand.Read(b)
	return b
}

func mustEncode(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestDataPlaneAttacksInProcess streams publisher → subscriber over the
// in-memory network, with and without a cluster key, and injects forged
// messages into both pods' inbound streams mid-stream: forged hellos with
// a huge seq, a forged batch with a high epoch, a forged ack with a huge
// watermark, a message from an unknown node and (with a key) an old counter
// sealed with the real key. None may change state: every one is counted,
// and the stream still ends exactly once with nothing skipped.
func TestDataPlaneAttacksInProcess(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprintf("key=%v", keyed), func(t *testing.T) {
			mn := newMemNet()
			pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
			pc.Beats, pc.Batch, pc.Rate = 1500, 10, 2*time.Millisecond // 3 s: the attacks land mid-stream
			sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
			if keyed {
				pc.ClusterKey, sc.ClusterKey = testKey, testKey
			}
			pub := startPod(t, mn, pc, "pub")
			sc.Join = []string{pub.p.GossipAddr()}
			sub := startPod(t, mn, sc, "sub")
			waitFor(t, "some values acked", 30*time.Second, func() bool {
				st := pub.p.pubSide.status.Load()
				return len(st.Subs) == 1 && st.Subs[0].Acked > 1000
			})
			pe, se := pub.p.epoch.Load(), sub.p.epoch.Load()
			toSub, _ := mn.node().AddPublication(channelURI(sc.DataEndpoint), DataStream)
			toPub, _ := mn.node().AddPublication(channelURI(pc.DataEndpoint), AckStream)
			ctl := func(id string, epoch, seq uint64) []byte {
				return mustEncode(codec.AppendControl(nil, &codec.Control{Type: codec.ControlHello, NodeID: id, Epoch: epoch, Seq: seq}))
			}
			ack := func(epoch, committed uint64) []byte {
				return mustEncode(codec.AppendAck(nil, &codec.Ack{Subscriber: "sub-1", SubscriberEpoch: epoch, Publisher: "pub-1", PublisherEpoch: pe, Committed: committed}))
			}
			batch := codec.AppendBatch(nil, &codec.Batch{Publisher: "pub-1", Epoch: 1000, FirstSeq: 1, Values: []uint64{1, 2, 3}})
			trailer := func() []byte {
				if keyed {
					return randomTrailer()
				}
				return nil
			}
			type attack struct {
				name   string
				to     publication
				msg    []byte
				reason string
			}
			attacks := []attack{
				{"batch with epoch 1000", toSub, append(batch, trailer()...), "unknown_sender"},
				{"hello from an unknown node", toSub, append(ctl("intruder", 1, 1e8), trailer()...), "unknown_sender"},
				{"hello with the next epoch", toSub, append(ctl("pub-1", pe+1, 1e8), trailer()...), "unknown_sender"},
				{"ack with a later epoch", toPub, append(ack(se+7, 1e9), trailer()...), "unknown_sender"},
			}
			if keyed {
				// A replay: a genuine message (sealed with the key, harmless:
				// a hello with seq 0) sent twice; the second copy is refused.
				keys, _ := auth.NewKeys(testKey)
				sealer, _ := keys.NewSealer(auth.Peer{ID: "pub-1", Epoch: pe})
				genuine, _ := sealer.Seal(ctl("pub-1", pe, 0), auth.Peer{ID: "sub-1", Epoch: se})
				attacks = append(attacks,
					// Without a trailer the last 24 bytes are taken for one and
					// the rest does not decode.
					attack{"hello with huge seq, no trailer", toSub, ctl("pub-1", pe, 1e8), "bad"},
					attack{"hello with huge seq, forged tag", toSub, append(ctl("pub-1", pe, 1e8), randomTrailer()...), "unauthenticated"},
					attack{"ack with huge watermark, forged tag", toPub, append(ack(se, 1e9), randomTrailer()...), "unauthenticated"},
					attack{"genuine message", toSub, genuine, "ok"},
					attack{"the same message again", toSub, genuine, "unauthenticated"},
				)
			}
			want := map[string]float64{}
			for _, a := range attacks {
				if _, err := a.to.Offer(a.msg); err != nil {
					t.Fatalf("%s: offer: %v", a.name, err)
				}
				victim := "sub"
				if a.to == toPub {
					victim = "pub"
				}
				// Which rejection reason a forged message is counted under
				// depends on the view at that moment (a member that flapped
				// under load is an unknown sender): their sum is checked.
				sample := "rejected"
				switch a.reason {
				case "bad":
					sample = "steadfast_bad_messages_total"
				case "ok":
					continue
				}
				want[victim+"/"+sample]++
			}
			for _, victim := range []*testPod{pub, sub} {
				name := "sub"
				if victim == pub {
					name = "pub"
				}
				value := func(m, sample string) float64 {
					if sample != "rejected" {
						return metricValue(t, m, sample)
					}
					return metricValue(t, m, `steadfast_data_rejected_total{reason="unknown_sender"}`) +
						metricValue(t, m, `steadfast_data_rejected_total{reason="unauthenticated"}`)
				}
				for _, sample := range []string{"rejected", "steadfast_bad_messages_total"} {
					w := want[name+"/"+sample]
					deadline := time.Now().Add(10 * time.Second)
					for value(scrape(t, victim.p), sample) < w {
						if time.Now().After(deadline) {
							t.Fatalf("%s: %s below %v:\n%s", name, sample, w, grepLines(scrape(t, victim.p), "rejected", "auth", "bad_messages", "stale"))
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				if keyed {
					if v := metricValue(t, scrape(t, victim.p), "steadfast_data_auth_verified_total"); v == 0 {
						t.Errorf("%s: no message verified", name)
					}
				}
			}
			if st := pub.p.pubSide.status.Load(); st.Subs[0].Acked > 15000 || st.Subs[0].Epoch != se {
				t.Fatalf("publisher's view of the subscriber changed: %+v", st.Subs[0])
			}
			sub.finished(t, 60*time.Second)
			f := readFinal(t, sub.dir)
			if r := Check(f.Tally["pub-1"], 15000, nil); !r.OK() || f.Tally["pub-1"].Skipped != 0 {
				t.Fatalf("check: %+v, skipped %d", r, f.Tally["pub-1"].Skipped)
			}
			if f.Epoch != se {
				t.Fatalf("subscriber epoch %d, want %d", f.Epoch, se)
			}
			if !strings.Contains(scrape(t, pub.p), "steadfast_data_authenticated "+map[bool]string{true: "1", false: "0"}[keyed]) {
				t.Fatal("steadfast_data_authenticated does not say whether the pod authenticates")
			}
		})
	}
}

// TestKeyRotation: mid-rotation, a publisher that sends with the new key
// (keys "NEW,OLD") and a subscriber that still sends with the old one
// ("OLD,NEW") gossip (memberlist's keyring) and stream to each other: the
// stream ends exactly once, every data-plane message verified.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey, []byte("steadfast-NEW-key-of-32-bytes!!!")
	mn := newMemNet()
	pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	pc.Beats, pc.Batch = 100, 10
	pc.Insecure, pc.ClusterKey, pc.ExtraKeys = false, newKey, [][]byte{oldKey}
	pub := startPod(t, mn, pc, "pub")
	sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	sc.Insecure, sc.ClusterKey, sc.ExtraKeys = false, oldKey, [][]byte{newKey}
	sc.Join = []string{pub.p.GossipAddr()}
	sub := startPod(t, mn, sc, "sub")
	sub.finished(t, 60*time.Second)
	if r := Check(readFinal(t, sub.dir).Tally["pub-1"], 1000, nil); !r.OK() {
		t.Fatalf("check: %+v", r)
	}
	for _, p := range []*testPod{pub, sub} {
		m := scrape(t, p.p)
		if metricValue(t, m, "steadfast_data_auth_verified_total") == 0 || metricValue(t, m, `steadfast_data_rejected_total{reason="unauthenticated"}`) != 0 {
			t.Fatalf("%s:\n%s", p.p.ID(), grepLines(m, "data_"))
		}
	}
	// The flag: the first key sends, the others are accepted.
	c, err := ParseFlags(Subscriber, []string{"--cluster-key", "MDEyMzQ1Njc4OWFiY2RlZg==,ZmVkY2JhOTg3NjU0MzIxMA=="}, env(nil), nil)
	if err != nil || string(c.ClusterKey) != "0123456789abcdef" || len(c.ExtraKeys) != 1 || string(c.ExtraKeys[0]) != "fedcba9876543210" {
		t.Fatalf("comma-separated keys: %v %q %q", err, c.ClusterKey, c.ExtraKeys)
	}
	for _, bad := range []string{"MDEyMzQ1Njc4OWFiY2RlZg==,", "MDEyMzQ1Njc4OWFiY2RlZg==,short", ",MDEyMzQ1Njc4OWFiY2RlZg=="} {
		if _, err := ParseFlags(Subscriber, []string{"--cluster-key", bad}, env(nil), nil); err == nil {
			t.Fatalf("--cluster-key %q accepted", bad)
		}
	}
}
