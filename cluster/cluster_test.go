package cluster

import (
	"context"
	"testing"
	"time"
)

func TestThreeNodesReplicate(t *testing.T) {
	a, ba := startNode(t, testConfig(t, "a"))
	if ba.Epoch != 1 || ba.Source != "none" {
		t.Fatalf("a boot = %+v", ba)
	}
	b, _ := startNode(t, testConfig(t, "b", a.LocalAddr()))
	c, _ := startNode(t, testConfig(t, "c", b.LocalAddr()))
	for _, n := range []*Cluster{a, b, c} {
		waitFor(t, n.Name()+" sees 3", func() bool { return len(n.Members()) == 3 })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := a.Save(ctx, snapshot("a", 1, 1, "hello"))
	if err != nil || len(d.Replicas) != 1 || d.Alone {
		t.Fatalf("Save = %+v, %v", d, err)
	}
	waitFor(t, "2 replicas", func() bool {
		return b.Stats().ReplicasHeld == 1 && c.Stats().ReplicasHeld == 1
	})
	t.Logf("a stats: %+v", a.Stats())
}
