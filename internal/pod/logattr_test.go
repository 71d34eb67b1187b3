package pod

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLoggerSecondsAndOneLine: the pods' logger writes durations as
// seconds under a _seconds key (slog wrote "35.884617ms" in text and
// integer nanoseconds in JSON) and errors on one line (memberlist's
// multierror carried "\n\t* "), in both formats.
func TestLoggerSecondsAndOneLine(t *testing.T) {
	multi := errors.New("2 errors occurred:\n\t* dial 10.0.0.1:7946: refused\n\t* dial 10.0.0.2:7946: timeout\n\n")
	for _, format := range []string{"json", "text"} {
		var out bytes.Buffer
		log := NewLogger(&out, slog.LevelInfo, format).With("wait", 250*time.Millisecond)
		log.Info("m", "took", 1500*time.Millisecond, "retry_in_seconds", 2*time.Second, "err", multi,
			"reason", "a\nb", "count", 3, "nil_err", error(nil))
		line := strings.TrimSpace(out.String())
		if strings.Count(line, "\n") != 0 {
			t.Fatalf("%s: more than one line: %q", format, line)
		}
		if format == "json" {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"wait_seconds": 0.25, "took_seconds": 1.5, "retry_in_seconds": 2.0,
				"err": "2 errors occurred: dial 10.0.0.1:7946: refused; dial 10.0.0.2:7946: timeout", "reason": "a b", "count": 3.0}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("json %s = %v, want %v (%s)", k, m[k], v, line)
				}
			}
			for _, k := range []string{"took", "wait"} {
				if _, ok := m[k]; ok {
					t.Errorf("json has %s: %s", k, line)
				}
			}
			continue
		}
		for _, want := range []string{"wait_seconds=0.25", "took_seconds=1.5", "retry_in_seconds=2 ",
			`err="2 errors occurred: dial 10.0.0.1:7946: refused; dial 10.0.0.2:7946: timeout"`, `reason="a b"`, "count=3"} {
			if !strings.Contains(line+" ", want) {
				t.Errorf("text: no %s in %s", want, line)
			}
		}
	}
}
