package main

import (
	"fmt"
	"net/http"
	"net/url"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"

	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/internal/memnet"
)

// newServiceClient is how a service calls another: through the callee's
// generated Connect client (newClient, such as
// communityv1connect.NewCommunityServiceClient) at baseURL, over client
// (TCP when split, memnet in one process), the caller's principal forwarded
// signed, the trace passed on. Use it in the calling service's context, so
// that the principal is the one the call is made for.
func newServiceClient[C any](newClient func(connect.HTTPClient, string, ...connect.ClientOption) C, baseURL string, client *http.Client, signer *connectauthz.Signer) (C, error) {
	tracing, err := otelconnect.NewInterceptor(otelconnect.WithoutMetrics())
	if err != nil {
		var none C
		return none, err
	}
	return newClient(client, baseURL, connect.WithInterceptors(tracing, connectauthz.Forward(signer))), nil
}

// tcpClient reaches services over the network: HTTP/2 without TLS (h2c),
// which gRPC's streams and trailers need.
func tcpClient() *http.Client { return &http.Client{Transport: memnet.H2CTransport(nil)} }

// parseServiceURL reads a -*-url flag: where a service alone listens, as
// http://host:port (h2c; the deployment's network carries no TLS between
// its processes).
func parseServiceURL(flag, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "") {
		err = fmt.Errorf("want http://host:port")
	}
	if err != nil {
		return nil, fmt.Errorf("-%s %q: %w", flag, raw, err)
	}
	return u, nil
}
