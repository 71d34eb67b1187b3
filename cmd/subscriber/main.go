// Command subscriber runs a steadfast subscriber pod: receive → worker
// (FizzBuzz) → logger, acknowledging only what a durable snapshot holds.
// Run it with --help for its flags and environment variables.
package main

import (
	"fmt"
	"os"

	"github.com/steadfast-pods/steadfast/internal/buildinfo"
	"github.com/steadfast-pods/steadfast/internal/pod"
)

func main() {
	pod.CrashOnPanic() // a crash exits 134 (SIGABRT), not 2 like a usage error
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println(buildinfo.String("subscriber"))
		return
	}
	os.Exit(pod.Main(pod.Subscriber, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
