package pod

import (
	"github.com/steadfast-pods/steadfast/transport"
)

// The pods use the transport through these small interfaces, so in-process
// tests can run them over an in-memory network (see net_test.go) while the
// binaries use the real driver.

// publication is the sending side of one stream to one endpoint.
type publication interface {
	Offer(msg []byte) (int64, error)
	Close() error
}

// subscription is the receiving side of one stream on this pod's endpoint.
type subscription interface {
	// Poll delivers up to limit messages to handler and returns how many.
	Poll(handler func(msg []byte, h transport.Header), limit int) int
	// Notify returns a channel that receives when data may be available
	// (nil: poll on a timer).
	Notify() <-chan struct{}
}

// network creates publications and subscriptions.
type network interface {
	AddPublication(channel string, streamID int32) (publication, error)
	AddSubscription(channel string, streamID int32) (subscription, error)
	Stats() transport.DriverStats
	Close() error
}

// driverNet adapts *transport.Driver to network.
type driverNet struct{ d *transport.Driver }

var _ network = driverNet{}

func (n driverNet) AddPublication(channel string, streamID int32) (publication, error) {
	p, err := n.d.AddPublication(channel, streamID)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (n driverNet) AddSubscription(channel string, streamID int32) (subscription, error) {
	s, err := n.d.AddSubscription(channel, streamID)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (n driverNet) Stats() transport.DriverStats { return n.d.Stats() }
func (n driverNet) Close() error                 { return n.d.Close() }
