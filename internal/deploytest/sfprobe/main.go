// Command sfprobe is the small HTTP tool scripts/netns-cluster.sh runs inside
// network namespaces, where curl may be missing:
//
//	sfprobe get URL      print the body; exit 0 on HTTP 200, 1 otherwise
//	sfprobe serve ADDR   answer every request with "sfprobe <ADDR> <NAME>"
//	                     (NAME from $SFPROBE_NAME); runs until killed
//
// get takes -timeout (default 2s).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: sfprobe get [-timeout D] URL | sfprobe serve ADDR")
		return 2
	}
	switch args[0] {
	case "get":
		fs := flag.NewFlagSet("get", flag.ContinueOnError)
		fs.SetOutput(stderr)
		timeout := fs.Duration("timeout", 2*time.Second, "request timeout")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
			fmt.Fprintln(stderr, "usage: sfprobe get [-timeout D] URL")
			return 2
		}
		return get(fs.Arg(0), *timeout, stdout, stderr)
	case "serve":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: sfprobe serve ADDR")
			return 2
		}
		name := os.Getenv("SFPROBE_NAME")
		addr := args[1]
		srv := &http.Server{
			Addr:              addr,
			ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "sfprobe %s %s\n", addr, name)
			}),
		}
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(stderr, "sfprobe serve:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "sfprobe: unknown command %q\n", args[0])
		return 2
	}
}

func get(url string, timeout time.Duration, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "sfprobe get:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "sfprobe get:", err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintln(stderr, "sfprobe get:", err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "sfprobe get: %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}
