// Command runner builds the steadfast pods, runs publishers and subscribers
// as local processes, injects faults on request, and checks that nothing was
// lost or duplicated. `go run ./cmd/runner` runs the default scenario;
// --help lists the flags.
package main

import (
	"fmt"
	"os"

	"github.com/steadfast-pods/steadfast/internal/buildinfo"
	"github.com/steadfast-pods/steadfast/internal/runner"
)

func main() {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println(buildinfo.String("runner"))
		return
	}
	os.Exit(runner.Main(os.Args[1:], os.Stdout, os.Stderr))
}
