package gateway

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
)

// Upstream is a service the gateway forwards to over HTTP, in another
// process (the distributed mode; one in the gateway's own process is
// Local). client must speak HTTP/2 to it (h2c), which gRPC's trailers and
// streams need.
func Upstream(name, path string, base *url.URL, client *http.Client) Service {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(base)
			r.Out.Host = base.Host
			// The client's address, for the service's logs; the gateway
			// already rate-limited it.
			r.SetXForwarded()
		},
		Transport:     upgrading{RoundTripper: client.Transport, http1: &http.Transport{}},
		FlushInterval: -1, // stream every write: server streams must not wait
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, unavailable(name, err))
		},
	}
	return Service{Name: name, Path: path, Handler: proxy}
}

// Local is a service running in the gateway's own process: the gateway
// hands each request, authenticated, rate-limited and with its principal
// signed as for any upstream, to the service's handler h directly. The
// service's own interceptors check it exactly as they would behind
// Upstream; only the forwarding copy is gone (for a stream, of every event).
//
// The service sees only what would cross the network: the gateway's
// principal is hidden from its context, so that it takes the caller from
// the signed header (connectauthz) as it does behind Upstream.
func Local(name, path string, h http.Handler) Service {
	return Service{Name: name, Path: path, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(authz.WithPrincipal(r.Context(), authz.Principal{})))
	})}
}

// unavailable is the error a client sees when a service cannot be reached.
func unavailable(name string, err error) *connect.Error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s is unavailable: %w", name, err))
}

// upgrading sends a request that asks to switch protocols (a WebSocket's
// opening handshake) over HTTP/1.1, the only version with Upgrade, and
// every other over the service's client.
type upgrading struct {
	http.RoundTripper
	http1 *http.Transport
}

func (t upgrading) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Upgrade") != "" {
		return t.http1.RoundTrip(r)
	}
	return t.RoundTripper.RoundTrip(r)
}
