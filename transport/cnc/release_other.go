//go:build !amd64 || race

package cnc

import "sync/atomic"

// Elsewhere, and under the race detector (which must see the
// synchronisation), release stores are atomic stores.

func storeRelease32(p *int32, v int32) { atomic.StoreInt32(p, v) }

func storeRelease64(p *int64, v int64) { atomic.StoreInt64(p, v) }
