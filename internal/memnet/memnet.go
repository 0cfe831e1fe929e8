// Package memnet is how Beep's services reach each other: in the
// all-in-one binary, by calling the other service's HTTP handler in the
// same process (HandlerClient); split, over TCP with HTTP/2 without TLS
// (H2CTransport). Either way a caller holds an *http.Client and speaks
// Connect or gRPC through it, so both modes run the same code.
package memnet

import (
	"context"
	"net"
	"net/http"
)

// H2CTransport is an HTTP/2-without-TLS transport dialing with dial (nil:
// TCP), which gRPC's trailers and streams need.
func H2CTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{Protocols: protocols, DialContext: dial, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	if dial == nil {
		t.DialContext = (&net.Dialer{}).DialContext
	}
	return t
}
