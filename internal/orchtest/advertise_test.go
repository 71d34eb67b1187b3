package orchtest

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// TestAdvertiseOneHostWhenBindingAll: a pod that binds 0.0.0.0 without
// ADVERTISE (as in the swarm stack, where no template gives the task's IP)
// must advertise gossip and data on the same host. memberlist alone picks
// the default route's interface, which on a swarm task is docker_gwbridge
// (unreachable from other tasks) while the data endpoint picks the overlay.
func TestAdvertiseOneHostWhenBindingAll(t *testing.T) {
	gp, dp := freePort(t), freePort(t)
	cfg, err := pod.ParseFlags(pod.Subscriber, nil, func(k string) string {
		return map[string]string{
			"NODE_ID":       "subscriber-1",
			"BIND":          "0.0.0.0:" + strconv.Itoa(gp),
			"DATA_ENDPOINT": "0.0.0.0:" + strconv.Itoa(dp),
			"METRICS_ADDR":  "127.0.0.1:0",
			"DATA_DIR":      t.TempDir(),
			"CLUSTER_KEY":   keySample,
		}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pod.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st := p.Status()
	gh, gport, err := net.SplitHostPort(st.GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	dh, _, err := net.SplitHostPort(st.DataEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	if gh != dh || gport != strconv.Itoa(gp) {
		t.Fatalf("gossip advertised on %s, data on %s: want one host, gossip port %d", st.GossipAddr, st.DataEndpoint, gp)
	}
	if ip := net.ParseIP(gh); ip == nil || ip.IsUnspecified() {
		t.Fatalf("advertised host %q is not a usable IP", gh)
	}
}
