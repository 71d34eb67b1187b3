package mediadriver

import (
	"strings"
	"testing"
)

func TestParseChannel(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		term int
		mtu  int
	}{
		{"aeron:ipc", true, 0, 0},
		{"aeron:ipc?term-length=64k|mtu=8k", true, 64 << 10, 8 << 10},
		{"aeron:udp?endpoint=127.0.0.1:4000|term-length=1m", true, 1 << 20, 0},
		{"aeron:udp", false, 0, 0},
		{"aeron:udp?term-length=64k", false, 0, 0},
		{"aeron:ipc?term-length=100k", false, 0, 0},
		{"aeron:ipc?term-length=2g", false, 0, 0},
		{"aeron:ipc?mtu=33", false, 0, 0},
		{"aeron:ipc?mtu", false, 0, 0},
		{"aeron:tcp?endpoint=x:1", false, 0, 0},
		{"", false, 0, 0},
	} {
		ch, err := parseChannel(c.in)
		if (err == nil) != c.ok || (c.ok && (ch.termLength != c.term || ch.mtu != c.mtu)) {
			t.Errorf("%q: %+v %v", c.in, ch, err)
		}
	}
}

func TestEmbeddedChannelResolves(t *testing.T) {
	raw := "aeron:udp?endpoint=localhost:4000|mtu=1408"
	ch, err := parseChannel(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := embeddedChannel(raw, ch)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "endpoint=127.0.0.1:4000|mtu=1408") && !strings.Contains(got, "endpoint=[::1]:4000") {
		t.Errorf("%q", got)
	}
	raw = "aeron:udp?endpoint=127.0.0.2:9"
	ch, _ = parseChannel(raw)
	if got, err := embeddedChannel(raw, ch); err != nil || got != raw {
		t.Errorf("literal: %q %v", got, err)
	}
}
