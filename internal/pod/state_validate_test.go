package pod

import (
	"errors"
	"testing"

	"github.com/steadfast-pods/steadfast/codec"
)

// The snapshot check the pods hand to the cluster refuses the poisoned
// states of issue 14 (a nil tally entry, "\x90" for the outbox) and accepts
// good ones and snapshots without those actors.
func TestValidateSnapshot(t *testing.T) {
	tally := NewTally()
	tally.Apply("pub-1", 1, 1, 1, Plain)
	good, err := codec.Marshal(&loggerState{Tally: tally, Lines: 1})
	if err != nil {
		t.Fatal(err)
	}
	check := validateSnapshot(1024)
	for name, tc := range map[string]struct {
		states map[string][]byte
		ok     bool
	}{
		"good logger":      {map[string][]byte{actorLogger: good}, true},
		"no known actor":   {map[string][]byte{"heartbeat": {0x90}}, true},
		"empty":            {nil, true},
		"nil tally entry":  {map[string][]byte{actorLogger: []byte("\x81\xa5tally\x81\xa4pubs\x81\xa5pub-1\xc0")}, false},
		"logger garbage":   {map[string][]byte{actorLogger: {0xc1}}, false},
		"publisher \\x90":  {map[string][]byte{actorPublish: {0x90}}, false},
		"publisher trunc.": {map[string][]byte{actorPublish: {0x85}}, false},
	} {
		err := check(&codec.Snapshot{NodeID: "n-1", Epoch: 1, Version: 1, States: tc.states})
		if tc.ok && err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		if !tc.ok && !errors.Is(err, ErrBadState) {
			t.Errorf("%s: got %v, want ErrBadState", name, err)
		}
	}
}
