package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"linker wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"linker blank", "  ", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v0.9.0"},
		{"no build info", "", nil, "(unknown)"},
		{"module version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v0.9.0"},
		{"devel, no vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(
			"vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-11-29T05:00:00Z", "vcs.modified", "false")},
			"(devel) 0123456789ab 2026-11-29T05:00:00Z"},
		{"vcs dirty", "", &debug.BuildInfo{Settings: vcs("vcs.revision", "abc", "vcs.modified", "true")}, "(devel) abc-dirty"},
	} {
		if got := resolve(tc.linked, tc.bi); got != tc.want {
			t.Errorf("%s: resolve = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"--version": true, "-version": true, "": false, "--help": false, "--node-id x --version": false,
	} {
		if got := Requested(strings.Fields(args)); got != want {
			t.Errorf("Requested(%q) = %v, want %v", args, got, want)
		}
	}
}

// The linker flag itself is checked on the real binaries: internal/deploytest
// builds them with the Dockerfile's own go build line and runs --version.
