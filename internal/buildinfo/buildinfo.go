// Package buildinfo holds the version the steadfast binaries report with
// --version.
//
// A release or image build sets it with the linker:
//
//	go build -ldflags "-X github.com/steadfast-pods/steadfast/internal/buildinfo.version=v1.2.3" ./cmd/...
//
// (the Dockerfile does this from its VERSION build argument). Without it, the
// version comes from the module information Go embeds in every binary: the
// module version for `go install …@v1.2.3`, else the VCS revision and time
// when the binary was built in a git checkout, else "(devel)".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set with -ldflags "-X …/buildinfo.version=…"; empty means not set.
var version string

// Version returns the binary's version: the linker-set one when present, else
// one derived from the embedded build information.
func Version() string {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, bi)
}

// resolve is Version's pure core.
func resolve(linked string, bi *debug.BuildInfo) string {
	if v := strings.TrimSpace(linked); v != "" {
		return v
	}
	if bi == nil {
		return "(unknown)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "(devel) " + rev
	if dirty {
		v += "-dirty"
	}
	if at != "" {
		v += " " + at
	}
	return v
}

// String is the line --version prints: "NAME VERSION (GOVERSION GOOS/GOARCH)".
func String(name string) string {
	return fmt.Sprintf("%s %s (%s %s/%s)", name, Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Requested reports whether args ask for the version: a first argument of
// --version or -version (as `publisher --version`).
func Requested(args []string) bool {
	return len(args) > 0 && (args[0] == "--version" || args[0] == "-version")
}
