package cnc

import (
	"fmt"
	"testing"
)

// A log laid out from a start position: the appender continues there
// (rotating into the next terms as a fresh log would), a reader from the
// start reads it all, and a log written by WriteFrames reads the same.
func TestLogStartPositionAndWriteFrames(t *testing.T) {
	const termLen = 64 << 10
	for _, start := range []int64{0, 96, termLen - 64, 5*termLen + 4096} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			p := LogParams{TermLength: termLen, PageSize: 4096, MTU: 1408, InitialTermID: -7,
				SessionID: 3, StreamID: 4, StartPosition: start}
			l, err := InitLog(AlignedCopy(make([]byte, LogLength(termLen, 4096))), p)
			if err != nil {
				t.Fatal(err)
			}
			app := NewAppender(l, 3, 4)
			if app.Position() != start {
				t.Fatalf("appender at %d, want %d", app.Position(), start)
			}
			// Two terms' worth of messages: rotations from the start.
			var want []string
			for i := 0; app.Position() < start+2*termLen; i++ {
				m := fmt.Sprintf("message %d %0100d", i, i)
				if res := app.Append([]byte(m), start+3*termLen); res < 0 {
					t.Fatalf("append %d: %d", i, res)
				}
				want = append(want, m)
			}
			read := func(l *Log) []string {
				var got []string
				rd := NewReader(l, start)
				for len(got) < len(want) {
					before := rd.Position()
					_, err := rd.Poll(func(m []byte, h Message) {
						if h.SessionID != 3 || h.TermID != l.InitialTermID+int32((h.Position-1)/termLen) {
							t.Errorf("header %+v", h)
						}
						got = append(got, string(m))
					}, 100)
					if err != nil || rd.Position() == before {
						t.Fatalf("read %d of %d: %v", len(got), len(want), err)
					}
				}
				return got
			}
			if got := read(l); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatal("read back differs")
			}

			// The same frames moved by WriteFrames, a term-bounded run at a
			// time, into a second log from the same start.
			l2, err := InitLog(AlignedCopy(make([]byte, LogLength(termLen, 4096))), p)
			if err != nil {
				t.Fatal(err)
			}
			for pos := start; pos < app.Position(); {
				idx := (pos / termLen) % PartitionCount
				off := int(pos % termLen)
				end := off
				for end < termLen && LoadInt32(l.Terms[idx], end) > 0 {
					end += alignFrame(int(LoadInt32(l.Terms[idx], end)))
				}
				WriteFrames(l2.Terms[idx], off, l.Terms[idx][off:end])
				pos += int64(end - off)
			}
			if got := read(l2); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatal("WriteFrames copy reads back differently")
			}
		})
	}
	for _, bad := range []int64{-32, 33} {
		if _, err := InitLog(AlignedCopy(make([]byte, LogLength(termLen, 4096))),
			LogParams{TermLength: termLen, PageSize: 4096, StartPosition: bad}); err == nil {
			t.Errorf("start %d accepted", bad)
		}
	}
}
