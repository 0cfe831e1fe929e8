package gateway

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"

	"connectrpc.com/connect"
)

// Upstream is a service the gateway forwards to over HTTP: in the
// all-in-one process through an in-memory listener, in the distributed mode
// over TCP; the same code either way. client must speak HTTP/2 to it (h2c),
// which gRPC's trailers and streams need.
func Upstream(name, path string, base *url.URL, client *http.Client) Service {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(base)
			r.Out.Host = base.Host
			// The client's address, for the service's logs; the gateway
			// already rate-limited it.
			r.SetXForwarded()
		},
		Transport:     client.Transport,
		FlushInterval: -1, // stream every write: server streams must not wait
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, unavailable(name, err))
		},
	}
	return Service{Name: name, Path: path, Handler: proxy}
}

// unavailable is the error a client sees when a service cannot be reached.
func unavailable(name string, err error) *connect.Error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s is unavailable: %w", name, err))
}
