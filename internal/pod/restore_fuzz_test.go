package pod

import (
	"errors"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

// The restore path decodes state from snapshots, which come from disk and
// from peers: whatever the bytes, restore returns a state that passed
// validation or an error, and never panics (issue 14 item 3).

func pubStateSeeds(f *testing.F) {
	ob, _ := NewOutbox(8, 1)
	_ = ob.Append(1, []uint64{1, 2, 3})
	ob.Release(1)
	marked, _ := NewOutbox(8, 1)
	_ = appendBeaten(marked, 1, []uint64{1, 2}, 1_795_000_000_000_000_000)
	_ = appendBeaten(marked, 3, []uint64{3}, 1_795_000_000_001_000_000)
	for _, st := range []*pubState{
		{Outbox: marked, Subs: map[string]*SubRecord{"sub-1": {Epoch: 1}}},
		{Outbox: ob, Subs: map[string]*SubRecord{"sub-1": {Epoch: 2, Acked: 1}, "sub-2": {Epoch: 1, Gone: 5}}, Sent: 9},
		{Outbox: ob},
	} {
		b, err := codec.Marshal(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x90"))                                          // the input that left the outbox nil
	f.Add([]byte("\x82\xa6outbox\xc0\xa4subs\x81\xa5sub-1\xc0"))   // nil outbox, nil record
	f.Add([]byte("\x81\xa4subs\x81\xa6../../x\x80"))               // a path in a node id
	f.Add([]byte("\x81\xa6outbox\x82\xa5first\x00\xa6values\x90")) // empty outbox
}

func FuzzRestorePubState(f *testing.F) {
	pubStateSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodePubState(b, 16)
		if err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("error %v does not wrap ErrBadState", err)
			}
			return
		}
		if err := st.Validate(); err != nil {
			t.Fatalf("decodePubState returned a state that fails Validate: %v", err)
		}
		c, err := NewPubCore(PubCoreConfig{Total: 100}, st)
		if err != nil {
			t.Fatal(err)
		}
		c.Tick(timeZero)
		c.Status()
		for s := st.Outbox.First(); s <= st.Outbox.Last() && s < st.Outbox.First()+4; s++ {
			if at := st.Outbox.BeatAt(s); at < 0 {
				t.Fatalf("negative beat time %d", at)
			}
		}
	})
}

func FuzzRestoreLoggerState(f *testing.F) {
	t := NewTally()
	t.Apply("pub-1", 1, 1, 1, Plain)
	t.Apply("pub-1", 1, 2, 2, Plain)
	t.End("pub-1", 1, 2)
	t.DeadLetter("pub-2", 3, 1, 1)
	b, _ := codec.Marshal(&loggerState{Tally: t, Lines: 2})
	f.Add(b)
	f.Add([]byte("\x81\xa5tally\x81\xa4pubs\x81\xa5pub-1\xc0")) // a nil tally entry
	f.Add([]byte("\x81\xa5tally\xc0"))
	f.Add([]byte("\x90"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ls, err := decodeLoggerState(b)
		if err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("error %v does not wrap ErrBadState", err)
			}
			return
		}
		if err := ls.Tally.Validate(); err != nil {
			t.Fatalf("decodeLoggerState returned a tally that fails Validate: %v", err)
		}
		st := ls.Tally.CoreState()
		c, err := NewSubCore(SubCoreConfig{}, &st)
		if err != nil {
			t.Fatalf("a valid tally gives an invalid core state: %v", err)
		}
		c.Finished(1)
		ls.Tally.Clone()
	})
}

var timeZero = time.Unix(0, 0)
