//go:build amd64 && !race

package cnc

// On amd64 every store is a release store (stores are not reordered with
// earlier loads or stores), so a plain MOV is one; being in assembly keeps
// the compiler from moving memory operations across it. An atomic store
// (XCHG) would add a full fence, which costs more than the rest of an
// append on this hardware.

//go:noescape
func storeRelease32(p *int32, v int32)

//go:noescape
func storeRelease64(p *int64, v int64)
