package pod

import (
	"math/bits"
	"sync"
)

// segPool recycles the value slices segments carry from receive to the
// logger (which puts them back), by power-of-two capacity class, so a
// steady stream allocates nothing per batch.
type segPool struct {
	classes [maxChunkBits + 1]sync.Pool
}

const maxChunkBits = 12 // 1<<maxChunkBits == maxChunk

func class(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// get returns a slice of length n.
func (p *segPool) get(n int) []uint64 {
	c := class(n)
	if c > maxChunkBits {
		return make([]uint64, n)
	}
	if v, ok := p.classes[c].Get().(*[]uint64); ok {
		return (*v)[:n]
	}
	return make([]uint64, n, 1<<c)
}

// put returns s for reuse (nil and odd capacities are dropped).
func (p *segPool) put(s []uint64) {
	c := class(cap(s))
	if s == nil || c > maxChunkBits || cap(s) != 1<<c {
		return
	}
	s = s[:0]
	p.classes[c].Put(&s)
}
