package cluster_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/codec"
)

// Two pods on one machine: the second joins through the first, saves a
// snapshot (durable once the first acknowledges its replica), and both list
// each other.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	start := func(id string, role cluster.Role, seeds ...string) (*cluster.Cluster, *cluster.Boot) {
		dir, err := os.MkdirTemp("", "example-"+id)
		if err != nil {
			panic(err)
		}
		dirs = append(dirs, dir)
		cfg := cluster.DefaultLocalConfig()
		cfg.NodeID, cfg.Role, cfg.DataDir = id, role, dir
		cfg.DataEndpoint = "127.0.0.1:40123"
		cfg.Seeds = seeds
		c, err := cluster.New(cfg)
		if err != nil {
			panic(err)
		}
		boot, err := c.Start(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: epoch %d, restored from %s\n", id, boot.Epoch, boot.Source)
		return c, boot
	}
	pub, _ := start("pub-1", cluster.RolePublisher)
	defer pub.Close()
	sub, boot := start("sub-1", cluster.RoleSubscriber, pub.LocalAddr())
	defer sub.Close()

	snap := &codec.Snapshot{NodeID: "sub-1", Epoch: boot.Epoch, Version: 1,
		States: map[string][]byte{"worker": []byte("state")}}
	d, err := sub.Save(ctx, snap)
	if err != nil {
		panic(err)
	}
	fmt.Printf("version %d durable on %v\n", d.Version, d.Replicas)

	for len(pub.Members()) < 2 {
		select {
		case <-pub.Changes():
		case <-ctx.Done():
			panic(ctx.Err())
		}
	}
	for _, m := range pub.Members() {
		fmt.Printf("pub-1 sees %s (%s, epoch %d, data %s)\n", m.NodeID, m.Role, m.Epoch, m.DataEndpoint)
	}
	// Output:
	// pub-1: epoch 1, restored from none
	// sub-1: epoch 1, restored from none
	// version 1 durable on [pub-1]
	// pub-1 sees pub-1 (publisher, epoch 1, data 127.0.0.1:40123)
	// pub-1 sees sub-1 (subscriber, epoch 1, data 127.0.0.1:40123)
}
