package memnet_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/internal/memnet"
)

// TestHandlerClientUnary: status, headers, body and both kinds of trailers
// (declared ahead, and http.TrailerPrefix) arrive as from net/http; the
// handler sees an HTTP/2 request with the client's host, path and body.
func TestHandlerClientUnary(t *testing.T) {
	client := memnet.HandlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "%s %s %s %s", r.Proto, r.Host, r.URL.Path, body)
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "fine")
	}))
	resp, err := client.Post("http://svc/pkg.Svc/Method", "application/grpc", strings.NewReader("ping"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Content-Type") != "application/grpc" || resp.ProtoMajor != 2 {
		t.Fatalf("status %d, headers %v, proto %d", resp.StatusCode, resp.Header, resp.ProtoMajor)
	}
	if _, declared := resp.Trailer["Grpc-Status"]; !declared {
		t.Fatalf("the declared trailer is not announced before the body: %v", resp.Trailer)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "HTTP/2.0 svc /pkg.Svc/Method ping" {
		t.Fatalf("body %q", body)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "fine" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
}

// TestHandlerClientIsFullDuplex: each line the client sends is echoed and
// read back before the next is written, so neither the request nor the
// response waits for the other's end (as a bidi stream needs).
func TestHandlerClientIsFullDuplex(t *testing.T) {
	client := memnet.HandlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		lines := bufio.NewScanner(r.Body)
		for lines.Scan() {
			fmt.Fprintf(w, "echo %s\n", lines.Text())
			w.(http.Flusher).Flush()
		}
	}))
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://svc/echo", pr)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	echoes := bufio.NewReader(resp.Body)
	for i := range 5 {
		if _, err := fmt.Fprintf(pw, "%d\n", i); err != nil {
			t.Fatal(err)
		}
		line, err := echoes.ReadString('\n')
		if err != nil || line != fmt.Sprintf("echo %d\n", i) {
			t.Fatalf("line %d: %q, %v", i, line, err)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(echoes); err != nil || len(rest) != 0 {
		t.Fatalf("after the request's end: %q, %v", rest, err)
	}
}

// TestHandlerClientCancels: closing the response body, or canceling the
// request, cancels the handler's context, as a reset stream does; and a
// handler blocked writing to a client that does not read is released.
func TestHandlerClientCancels(t *testing.T) {
	ended := make(chan error, 1)
	client := memnet.HandlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		if r.URL.Path == "/flood" {
			chunk := make([]byte, 64<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					ended <- err
					return
				}
			}
		}
		<-r.Context().Done()
		ended <- r.Context().Err()
	}))
	waitEnded := func(what string) {
		t.Helper()
		select {
		case err := <-ended:
			if err == nil {
				t.Fatalf("%s: the handler ended without an error", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the handler goes on", what)
		}
	}

	resp, err := client.Get("http://svc/wait")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitEnded("body closed")

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/wait", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitEnded("request canceled")
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading a canceled response: %v", err)
	}
	resp.Body.Close()

	resp, err = client.Get("http://svc/flood")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the buffer fill and the writer block
	resp.Body.Close()
	waitEnded("flood, body closed")
}

// TestHandlerClientPanic: a handler that panics mid-body leaves the client
// what it wrote, then an error rather than a clean end.
func TestHandlerClientPanic(t *testing.T) {
	client := memnet.HandlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "partial")
		panic("boom")
	}))
	resp, err := client.Get("http://svc/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if string(body) != "partial" || err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("got %q, %v", body, err)
	}
}

// TestReverseProxyOverHandlerClient: the gateway's path: an HTTP/2 client,
// a reverse proxy, HandlerClient, a handler streaming with a trailer. The
// first message arrives before the handler ends, the trailer after.
func TestReverseProxyOverHandlerClient(t *testing.T) {
	release := make(chan struct{})
	upstream := memnet.HandlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		fmt.Fprint(w, "first;")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "second")
		w.Header().Set("Grpc-Status", "0")
	}))
	base, _ := url.Parse("http://svc")
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(base) }, Transport: upstream.Transport, FlushInterval: -1}
	edge := httptest.NewUnstartedServer(proxy)
	edge.Config.Protocols = unencryptedHTTP2()
	edge.Start()
	defer edge.Close()
	client := &http.Client{Transport: memnet.H2CTransport(nil)}
	resp, err := client.Get(edge.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("first: %q, %v", first, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
}
