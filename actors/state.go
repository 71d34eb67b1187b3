package actors

import (
	"encoding/json"
)

// StateCodec serialises actor states for snapshots. Pods plug in msgpack; the
// runtime ships JSONCodec. Implementations must be safe for concurrent use
// (different actors may marshal at the same time).
type StateCodec interface {
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to the actor's state.
	Unmarshal(data []byte, v any) error
}

// JSONCodec is a StateCodec using encoding/json.
type JSONCodec struct{}

var _ StateCodec = JSONCodec{}

// Marshal encodes v as JSON.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// StateOf returns the actor's state as *S. It panics if the actor was added
// with a state of another type (a wiring bug).
func StateOf[S any](ctx *Context) *S {
	return ctx.State().(*S)
}
