package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelpAndBadFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out); code != 0 || !strings.Contains(out.String(), "Usage:") || !strings.Contains(out.String(), "-dir") {
		t.Errorf("--help: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--dir", filepath.Join(t.TempDir(), "d"), "--mtu", "33"}, &out); code != 1 || !strings.Contains(out.String(), "MTU") {
		t.Errorf("--mtu 33: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"extra"}, &out); code != 2 {
		t.Errorf("extra argument: exit %d", code)
	}
}
