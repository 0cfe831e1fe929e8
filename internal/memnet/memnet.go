// Package memnet is an in-memory network: a net.Listener whose connections
// are made by dialing it in the same process. The all-in-one binary serves
// each service on one, so that the gateway reaches a service over HTTP in
// both modes, in memory or over TCP, through the same code.
package memnet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
)

// ErrClosed is returned by Accept and Dial once the listener is closed.
var ErrClosed = errors.New("memnet: listener closed")

// Listener accepts the connections its Dial methods make.
type Listener struct {
	name   string
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// Listen returns a listener; name appears as its address.
func Listen(name string) *Listener {
	return &Listener{name: name, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, ErrClosed
	}
}

// Close stops accepting; connections already made stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the listener's name, as a "memnet" address.
func (l *Listener) Addr() net.Addr { return addr(l.name) }

// DialContext connects to the listener, whatever network and address: it
// has the signature of net.Dialer.DialContext for http.Transport. The
// connection is buffered (see Pipe); it waits for Accept, the context or
// Close.
func (l *Listener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := Pipe(addr("client of "+l.name), addr(l.name))
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Client returns an HTTP client whose connections go to the listener, over
// HTTP/2 without TLS (so that gRPC streams and trailers work), whatever the
// URL's host.
func (l *Listener) Client() *http.Client {
	return &http.Client{Transport: H2CTransport(l.DialContext)}
}

// H2CTransport is an HTTP/2-without-TLS transport dialing with dial (nil:
// TCP).
func H2CTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{Protocols: protocols, DialContext: dial, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	if dial == nil {
		t.DialContext = (&net.Dialer{}).DialContext
	}
	return t
}

// network is the name of memnet's addresses' network.
const network = "memnet"

type addr string

func (a addr) Network() string { return network }
func (a addr) String() string  { return string(a) }
