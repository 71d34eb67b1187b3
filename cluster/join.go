package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// lookupTimeout bounds one DNS lookup of a seed.
const lookupTimeout = 2 * time.Second

// pendingSeed is a seed that gave no address to try yet.
type pendingSeed struct {
	seed string
	err  error
}

var errOnlySelf = errors.New("resolves only to this node")

// hasSeeds reports whether any non-empty seed is configured.
func (c *Cluster) hasSeeds() bool {
	return slices.ContainsFunc(c.cfg.Seeds, func(s string) bool { return strings.TrimSpace(s) != "" })
}

// isSelf reports whether ip:port is this node's advertised gossip address.
func (c *Cluster) isSelf(ip net.IP, port int) bool {
	return port == int(c.localPort) && ip.Equal(c.localIP)
}

// resolveSeeds resolves every seed afresh and returns the addresses
// (ip:port, this node's own left out) to join, and the seeds that gave
// none yet with the reason. A seed given as an IP address of this node is
// dropped silently (the first node of a static list); a name that
// resolves only to this node is pending: its other addresses may not be
// published yet. A seed without a port uses this node's gossip port.
func (c *Cluster) resolveSeeds(ctx context.Context) ([]string, []pendingSeed) {
	lookup := c.cfg.LookupHost
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	var addrs []string
	var pending []pendingSeed
	for _, s := range c.cfg.Seeds {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		host, portStr, err := net.SplitHostPort(s)
		if err != nil {
			host, portStr = s, strconv.Itoa(int(c.localPort))
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port <= 0 || port > 65535 {
			pending = append(pending, pendingSeed{s, fmt.Errorf("bad port %q", portStr)})
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !c.isSelf(ip, port) {
				addrs = append(addrs, net.JoinHostPort(ip.String(), portStr))
			}
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		ips, err := lookup(lctx, host)
		cancel()
		if err == nil && len(ips) == 0 {
			err = errors.New("no address")
		}
		if err != nil {
			pending = append(pending, pendingSeed{s, err})
			continue
		}
		found := false
		for _, a := range ips {
			ip := net.ParseIP(a)
			if ip == nil || c.isSelf(ip, port) {
				continue
			}
			found = true
			addrs = append(addrs, net.JoinHostPort(ip.String(), portStr))
		}
		if !found {
			pending = append(pending, pendingSeed{s, errOnlySelf})
		}
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), pending
}

// join retries memberlist's Join through the seeds until one answers,
// resolving them afresh before every attempt. It returns nil without
// joining when the seeds name only this node, or when StartAloneAfter
// passed without an answer.
func (c *Cluster) join(ctx context.Context) error {
	if !c.hasSeeds() {
		c.log.Info("cluster: no seed, starting a new cluster", "addr", c.LocalAddr())
		return nil
	}
	t0 := time.Now()
	delay := c.cfg.JoinRetry
	for attempt := 1; ; attempt++ {
		c.st.joinAttempts.Add(1)
		addrs, pending := c.resolveSeeds(ctx)
		if len(addrs) == 0 && len(pending) == 0 {
			c.log.Info("cluster: the seeds are this node's own address, starting a new cluster", "addr", c.LocalAddr())
			return nil
		}
		for _, p := range pending {
			c.log.Info("cluster: seed gives no address yet", "seed", p.seed, "reason", oneLine(p.err), "attempt", attempt)
		}
		var last error
		if len(pending) > 0 {
			last = fmt.Errorf("%s: %s", pending[0].seed, oneLine(pending[0].err))
		}
		if len(addrs) > 0 {
			n, err := c.ml.Join(addrs)
			if n > 0 {
				c.log.Info("cluster: joined", "contacted", n, "addresses", addrs, "attempts", attempt,
					"took_seconds", time.Since(t0).Seconds())
				return nil
			}
			last = errors.New(oneLine(err))
			c.log.Info("cluster: no seed answered", "addresses", addrs, "reason", last.Error(), "attempt", attempt,
				"retry_in_seconds", delay.Seconds())
		}
		wait := delay
		if after := c.cfg.StartAloneAfter; after > 0 {
			left := after - time.Since(t0)
			if left <= 0 {
				c.log.Info("cluster: no seed answered within the start-alone wait, starting a new cluster",
					"waited_seconds", time.Since(t0).Seconds(), "seeds", strings.Join(c.cfg.Seeds, ","), "addr", c.LocalAddr())
				return nil
			}
			wait = min(wait, left)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: seeds %s: %w (last: %v)", ErrJoin, strings.Join(c.cfg.Seeds, ","), ctx.Err(), last)
		case <-c.done:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		delay = min(2*delay, c.cfg.JoinRetryMax)
	}
}

// rejoin runs after Start: every JoinRetryMax it resolves the seeds again
// and joins the addresses that are not known members, so that clusters
// that formed apart merge (fencing by epoch then settles any node id that
// runs in both).
func (c *Cluster) rejoin() {
	t := time.NewTicker(c.cfg.JoinRetryMax)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		addrs, _ := c.resolveSeeds(ctx)
		cancel()
		c.mu.Lock()
		known := make(map[string]bool, len(c.nodes))
		for _, n := range c.nodes {
			known[n.addr()] = true
		}
		c.mu.Unlock()
		var fresh []string
		for _, a := range addrs {
			if !known[a] {
				fresh = append(fresh, a)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		n, err := c.ml.Join(fresh)
		if n > 0 {
			c.log.Info("cluster: joined seed addresses that were not members", "addresses", fresh, "contacted", n)
		} else {
			c.log.Debug("cluster: rejoin", "addresses", fresh, "reason", oneLine(err))
		}
	}
}

// oneLine flattens an error onto one line: memberlist's multierror
// ("2 errors occurred:\n\t* a\n\t* b\n\n") becomes "2 errors occurred: a; b".
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	parts := strings.Split(err.Error(), "\n\t* ")
	s := parts[0]
	if len(parts) > 1 {
		s += " " + strings.Join(parts[1:], "; ")
	}
	return strings.Join(strings.Fields(s), " ")
}
