package transport

import (
	"slices"
	"testing"
)

// TestInvalidDatagramReasonsComplete: every reason Stats.InvalidDatagrams
// can carry is in InvalidDatagramReasons (the pods export each from the
// start, and dashboards plot them).
func TestInvalidDatagramReasonsComplete(t *testing.T) {
	for r := dropNone + 1; r <= dropBadLength; r++ {
		if !slices.Contains(InvalidDatagramReasons, r.String()) {
			t.Errorf("drop reason %q is not in InvalidDatagramReasons", r.String())
		}
	}
	if !slices.Contains(InvalidDatagramReasons, "publication") {
		t.Error(`"publication" is not in InvalidDatagramReasons`)
	}
}
