package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func complete(n uint64) pubTally {
	return pubTally{
		LastSeq: n, EndSeq: n, Count: n,
		FizzBuzz: n / 15, Fizz: n/3 - n/15, Buzz: n/5 - n/15,
		Plain: n - n/3 - n/5 + n/15, PlainSum: tri(n) - 3*tri(n/3) - 5*tri(n/5) + 15*tri(n/15),
	}
}

// tallyOf applies the values one by one, the way a subscriber's logger
// counts them.
func tallyOf(values []uint64, end uint64) pubTally {
	var t pubTally
	for _, v := range values {
		t.Count++
		if v > t.LastSeq {
			t.LastSeq = v
		}
		switch {
		case v%15 == 0:
			t.FizzBuzz++
		case v%3 == 0:
			t.Fizz++
		case v%5 == 0:
			t.Buzz++
		default:
			t.Plain++
			t.PlainSum += v
		}
	}
	t.EndSeq = end
	return t
}

func TestFinalClosedForm(t *testing.T) {
	const n = 1000
	seq := make([]uint64, 0, n)
	for v := uint64(1); v <= n; v++ {
		seq = append(seq, v)
	}
	if got := tallyOf(seq, n); got != complete(n) {
		t.Fatalf("closed form %+v disagrees with counting 1..%d: %+v", complete(n), n, got)
	}
	lost := append(append([]uint64{}, seq[:40]...), seq[41:]...)             // 41 missing
	dup := append(append([]uint64{}, seq...), 41)                            // 41 twice
	swap := append(append(append([]uint64{}, seq[:40]...), 42), seq[41:]...) // 41 missing, 42 twice
	cases := []struct {
		name string
		t    pubTally
		ok   bool
		want string
	}{
		{"complete", tallyOf(seq, n), true, "lost 0, duplicated 0"},
		{"lost", tallyOf(lost, n), false, "lost 1"},
		{"duplicated", tallyOf(dup, n), false, "duplicated 1"},
		{"one lost one duplicated", tallyOf(swap, n), false, "BROKEN"},
		{"no end of stream", tallyOf(seq, 0), false, "BROKEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl := tc.t
			path := filepath.Join(t.TempDir(), "final-state.json")
			b, _ := json.Marshal(finalState{NodeID: "subscriber-1", RestoreSource: "peer:x", Tally: map[string]*pubTally{"publisher-1": &tl}})
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := final(path, n, &out, &errb)
			if (code == 0) != tc.ok || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, output %q %q; want ok=%v and %q", code, out.String(), errb.String(), tc.ok, tc.want)
			}
		})
	}
}
