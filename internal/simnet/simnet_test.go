package simnet

import (
	"net/netip"
	"testing"
)

func TestDeterministicFaults(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:1")
	b := netip.MustParseAddrPort("127.0.0.1:2")
	run := func(seed uint64) ([]byte, Stats) {
		n := New(seed, Faults{Loss: 0.2, Duplicate: 0.1, Reorder: 0.2, MinDelay: 10, MaxDelay: 100, ReorderDelay: 1000})
		for i := 0; i < 1000; i++ {
			n.Send(int64(i), a, b, []byte{byte(i)})
		}
		var got []byte
		n.Deliver(1<<40, func(p *Packet) {
			if p.From != a || p.To != b {
				t.Fatal("addresses")
			}
			got = append(got, p.Data[0])
		})
		return got, n.Stats()
	}
	g1, s1 := run(7)
	g2, s2 := run(7)
	g3, _ := run(8)
	if string(g1) != string(g2) || s1 != s2 {
		t.Fatal("same seed, different runs")
	}
	if string(g1) == string(g3) {
		t.Fatal("different seeds, same run")
	}
	if s1.Dropped < 150 || s1.Dropped > 250 || s1.Duplicated == 0 || s1.Reordered == 0 {
		t.Fatalf("fault rates off: %+v", s1)
	}
	if s1.Delivered != s1.Sent-s1.Dropped+s1.Duplicated || uint64(len(g1)) != s1.Delivered {
		t.Fatalf("accounting: %+v, %d delivered", s1, len(g1))
	}
	inOrder := true
	for i := 1; i < len(g1); i++ {
		if g1[i] < g1[i-1] && g1[i-1]-g1[i] < 128 {
			inOrder = false
		}
	}
	if inOrder {
		t.Fatal("no reordering observed")
	}
}

func TestClock(t *testing.T) {
	var c Clock
	c.Advance(5)
	c.Set(3)
	if c.Now() != 5 {
		t.Fatal("clock went backwards")
	}
	c.Set(9)
	if c.Now() != 9 {
		t.Fatal("Set")
	}
}
