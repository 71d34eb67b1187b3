// Command sfprobe is the small HTTP tool scripts/netns-cluster.sh runs inside
// network namespaces, where curl may be missing:
//
//	sfprobe get URL      print the body; exit 0 on HTTP 200, 1 otherwise
//	sfprobe serve ADDR   answer every request with "sfprobe <ADDR> <NAME>"
//	                     (NAME from $SFPROBE_NAME); runs until killed
//	sfprobe final FILE N check a subscriber's final-state.json against the
//	                     closed form of a complete stream 1..N from every
//	                     publisher in it; exit 0 when exactly once, else 1
//
// get takes -timeout (default 2s).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
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
	case "final":
		if len(args) != 3 {
			fmt.Fprintln(stderr, "usage: sfprobe final FILE N")
			return 2
		}
		n, err := strconv.ParseUint(args[2], 10, 64)
		if err != nil || n == 0 {
			fmt.Fprintln(stderr, "sfprobe final: N must be a whole number > 0")
			return 2
		}
		return final(args[1], n, stdout, stderr)
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

// finalState is the part of a subscriber's final-state.json (written by the
// pod when it finishes) that the closed-form check reads.
type finalState struct {
	NodeID        string               `json:"node_id"`
	RestoreSource string               `json:"restore_source"`
	Tally         map[string]*pubTally `json:"tally"`
}

type pubTally struct {
	LastSeq   uint64 `json:"last_seq"`
	EndSeq    uint64 `json:"end_seq"`
	Count     uint64 `json:"count"`
	Fizz      uint64 `json:"fizz"`
	Buzz      uint64 `json:"buzz"`
	FizzBuzz  uint64 `json:"fizzbuzz"`
	Plain     uint64 `json:"plain"`
	PlainSum  uint64 `json:"plain_sum"`
	DeadCount uint64 `json:"dead_count"`
	Skipped   uint64 `json:"skipped"`
}

func tri(k uint64) uint64 { return k * (k + 1) / 2 }

// final checks each publisher's tally against the closed form for the values
// 1..n (written here independently of the pods' own check): count n, last
// seq and end of stream n, FizzBuzz n/15, Fizz n/3-n/15, Buzz n/5-n/15, the
// plain values and their sum. Any value lost or applied twice breaks it.
func final(path string, n uint64, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "sfprobe final:", err)
		return 1
	}
	var st finalState
	if err := json.Unmarshal(b, &st); err != nil {
		fmt.Fprintf(stderr, "sfprobe final: %s: %v\n", path, err)
		return 1
	}
	if len(st.Tally) == 0 {
		fmt.Fprintf(stderr, "sfprobe final: %s: no publisher in the tally\n", path)
		return 1
	}
	want := pubTally{
		LastSeq: n, EndSeq: n, Count: n,
		FizzBuzz: n / 15, Fizz: n/3 - n/15, Buzz: n/5 - n/15,
		Plain:    n - n/3 - n/5 + n/15,
		PlainSum: tri(n) - 3*tri(n/3) - 5*tri(n/5) + 15*tri(n/15),
	}
	pubs := make([]string, 0, len(st.Tally))
	for p := range st.Tally {
		pubs = append(pubs, p)
	}
	sort.Strings(pubs)
	ok := true
	for _, p := range pubs {
		got := st.Tally[p]
		if got == nil {
			got = &pubTally{}
		}
		lost, dup := uint64(0), uint64(0)
		if got.Count < n {
			lost = n - got.Count
		} else {
			dup = got.Count - n
		}
		verdict := "exactly once"
		if *got != want {
			ok = false
			verdict = fmt.Sprintf("BROKEN: got %+v, closed form %+v", *got, want)
		}
		fmt.Fprintf(stdout, "final %s (restore source %s): publisher %s: count %d of %d, lost %d, duplicated %d, fizz %d buzz %d fizzbuzz %d plain %d sum %d: %s\n",
			st.NodeID, st.RestoreSource, p, got.Count, n, lost, dup, got.Fizz, got.Buzz, got.FizzBuzz, got.Plain, got.PlainSum, verdict)
	}
	if !ok {
		return 1
	}
	return 0
}
