package pod

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestReplicaAcks: --replica-acks reaches the cluster. With three pods each
// snapshot goes to two peers; a publisher with ReplicaAcks 2 counts one
// durable only once both acknowledged it, one with 1 (the default) as soon
// as the first did (Save returns at the first ack, so its Durable names
// exactly one peer).
func TestReplicaAcks(t *testing.T) {
	for _, acks := range []int{1, 2} {
		t.Run(fmt.Sprint(acks), func(t *testing.T) {
			mn := newMemNet()
			pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
			pc.Beats, pc.Batch, pc.ReplicaAcks = 200, 8, acks
			pc.MinSubscribers = 2
			pub := startPod(t, mn, pc, "pub")
			var subs []*testPod
			for i, addr := range []string{"127.0.0.1:2", "127.0.0.1:3"} {
				sc := baseConfig(t, Subscriber, fmt.Sprintf("sub-%d", i+1), addr)
				sc.Join = []string{pub.p.GossipAddr()}
				subs = append(subs, startPod(t, mn, sc, fmt.Sprintf("sub%d", i+1)))
			}
			for _, s := range subs {
				s.finished(t, 60*time.Second)
			}
			d := pub.p.snapStat.lastDurable.Load()
			if d == nil {
				t.Fatal("the publisher has no durable snapshot")
			}
			if len(d.Replicas) != acks {
				t.Fatalf("the publisher's last durable snapshot (version %d) was acknowledged by %v before Save returned: want %d peers", d.Version, d.Replicas, acks)
			}
		})
	}
}

func TestReplicaAcksFlag(t *testing.T) {
	env := func(string) string { return "" }
	for _, bad := range []string{"0", "3", "-1", "x"} {
		if _, err := ParseFlags(Publisher, []string{"--insecure", "--replica-acks", bad}, env, io.Discard); err == nil {
			t.Errorf("--replica-acks %s accepted", bad)
		}
	}
	c, err := ParseFlags(Publisher, []string{"--insecure", "--replica-acks", "2"}, env, io.Discard)
	if err != nil || c.ReplicaAcks != 2 {
		t.Fatalf("--replica-acks 2: %+v, %v", c.ReplicaAcks, err)
	}
	c, err = ParseFlags(Subscriber, []string{"--insecure"}, func(k string) string {
		if k == "REPLICA_ACKS" {
			return "2"
		}
		return ""
	}, io.Discard)
	if err != nil || c.ReplicaAcks != 2 {
		t.Fatalf("REPLICA_ACKS=2: %+v, %v", c.ReplicaAcks, err)
	}
	c = baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	c.ReplicaAcks = 3
	if err := c.validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "replica acks") {
		t.Fatalf("ReplicaAcks 3 validated: %v", err)
	}
}
