package pod

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/internal/auth"
)

// dataAuth is the pods' one seam to the data plane's authentication: every
// outgoing pod message is sealed for its recipient, and every incoming one
// is admitted only from a live member (the membership view's node id, role
// and epoch) and, with a cluster key, with a tag that verifies
// (internal/auth). Without a key (--insecure) messages carry no trailer and
// only the membership check applies.
type dataAuth struct {
	log      *slog.Logger
	lim      *logLimiter // one warning per reason per dropLogEvery
	view     *view
	keys     *auth.Keys                    // nil: insecure
	sealer   atomic.Pointer[auth.Sealer]   // set by start
	verifier atomic.Pointer[auth.Verifier] // set by start

	rejected [admitReasons]atomic.Uint64
}

// admitVerdict says whether an incoming message may change state.
type admitVerdict uint8

const (
	admitOK      admitVerdict = iota
	admitStale                // an older epoch of a live member (a zombie): the callers count it as stale
	admitUnknown              // not a live member with this role and epoch
	admitUnauth               // the tag did not verify, a replay, or no trailer
	admitReasons
)

func (v admitVerdict) String() string {
	return [...]string{"ok", "stale_epoch", "unknown_sender", "unauthenticated"}[v]
}

var errNotStarted = errors.New("pod: data-plane authentication not started")

// dropLogEvery: at most one warning per rejection reason this often, with
// the count of the rejections not logged since the last one.
const dropLogEvery = 5 * time.Second

func newDataAuth(log *slog.Logger, v *view, clusterKeys ...[]byte) (*dataAuth, error) {
	a := &dataAuth{log: log, lim: newLogLimiter(dropLogEvery), view: v}
	if len(clusterKeys) > 0 && clusterKeys[0] != nil {
		k, err := auth.NewKeys(clusterKeys...)
		if err != nil {
			return nil, fmt.Errorf("pod: data-plane keys: %w", err)
		}
		a.keys = k
	}
	return a, nil
}

// start binds the sealer and verifier to this incarnation (call once the
// epoch is chosen, before any message is sent or received).
func (a *dataAuth) start(id string, epoch uint64) error {
	if a.keys == nil {
		return nil
	}
	self := auth.Peer{ID: id, Epoch: epoch}
	s, err := a.keys.NewSealer(self)
	if err != nil {
		return fmt.Errorf("pod: data-plane sealer: %w", err)
	}
	v, err := a.keys.NewVerifier(self, auth.VerifierConfig{})
	if err != nil {
		return fmt.Errorf("pod: data-plane verifier: %w", err)
	}
	a.sealer.Store(s)
	a.verifier.Store(v)
	return nil
}

// seal appends the trailer for recipient (to, epoch) to msg, the encoded
// message; without a key it returns msg as it is.
func (a *dataAuth) seal(msg []byte, to string, epoch uint64) ([]byte, error) {
	if a.keys == nil {
		return msg, nil
	}
	s := a.sealer.Load()
	if s == nil {
		return msg, errNotStarted
	}
	return s.Seal(msg, auth.Peer{ID: to, Epoch: epoch})
}

// body returns the codec body of an incoming message (without its
// trailer); false (counted) when it cannot carry one.
func (a *dataAuth) body(msg []byte) ([]byte, bool) {
	if a.keys == nil {
		return msg, true
	}
	b, ok := auth.Body(msg)
	if !ok {
		a.rejected[admitUnauth].Add(1)
		a.warn(admitUnauth, "", 0)
	}
	return b, ok
}

// admit decides whether msg, whose decoded body names its sender (from,
// epoch), may change state: the sender must be a live member with role and
// exactly that epoch, and the tag must verify. Rejections other than stale
// are counted here.
func (a *dataAuth) admit(msg []byte, from string, epoch uint64, role cluster.Role) admitVerdict {
	v := a.member(from, epoch, role)
	if v == admitOK && a.keys != nil {
		if vr := a.verifier.Load(); vr == nil || vr.Verify(msg, auth.Peer{ID: from, Epoch: epoch}) != nil {
			v = admitUnauth
		}
	}
	if v != admitOK && v != admitStale {
		a.rejected[v].Add(1)
		a.warn(v, from, epoch)
	}
	return v
}

// warn logs a rejection, rate limited per reason.
func (a *dataAuth) warn(v admitVerdict, from string, epoch uint64) {
	if n, ok := a.lim.allow(v.String(), time.Now()); ok {
		a.log.Warn("pod: data-plane message dropped", "reason", v.String(), "from", from, "epoch", epoch,
			"not_logged_since_last", n, "total", a.rejected[v].Load())
	}
}

func (a *dataAuth) member(id string, epoch uint64, role cluster.Role) admitVerdict {
	m, ok := a.view.member(id)
	switch {
	case !ok || m.Role != role || m.Self:
		return admitUnknown
	case epoch < m.Epoch:
		return admitStale
	case epoch > m.Epoch:
		return admitUnknown
	}
	return admitOK
}

// collect emits the rejection counters.
func (a *dataAuth) collect(e emitter) {
	for v := admitStale + 1; v < admitReasons; v++ {
		e.counter("steadfast_data_rejected_total", "Data-plane messages dropped before they could change state, by reason: unknown_sender (not a live member with that role and epoch) or unauthenticated (no trailer, bad tag or replay; see steadfast_data_auth_rejects_total).", float64(a.rejected[v].Load()), "reason", v.String())
	}
	e.gauge("steadfast_data_authenticated", "1 when data-plane messages are authenticated with the cluster key, 0 when the pod runs --insecure.", b2f(a.keys != nil))
	vr := a.verifier.Load()
	if vr == nil {
		return
	}
	st := vr.Stats()
	e.counter("steadfast_data_auth_verified_total", "Data-plane messages whose tag verified.", float64(st.OK))
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"short", st.Short}, {"bad_tag", st.BadTag}, {"replay", st.Replay}, {"stale_epoch", st.StaleEpoch}, {"bad_peer", st.BadPeer}, {"too_many_senders", st.Full}} {
		e.counter("steadfast_data_auth_rejects_total", "Data-plane messages whose authentication failed, by reason.", float64(r.n), "reason", r.reason)
	}
}

// admitted is admit for the receive loops: a stale message adds n to
// stale (the pods' existing zombie counter); it reports whether the
// message may change state.
func (a *dataAuth) admitted(msg []byte, from string, epoch uint64, role cluster.Role, stale *atomic.Uint64, n uint64) bool {
	switch a.admit(msg, from, epoch, role) {
	case admitOK:
		return true
	case admitStale:
		stale.Add(n)
	}
	return false
}
