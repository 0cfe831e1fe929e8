package memnet_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/beepchat/beep/internal/memnet"
)

// grpcLike answers with a body and a trailer, as gRPC does.
func grpcLike() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
		w.Header().Set("Grpc-Status", "0")
	})
}

func unencryptedHTTP2() *http.Protocols {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return protocols
}

// TestConcurrentRequests: requests at once through one HandlerClient each
// get their own answer and trailer.
func TestConcurrentRequests(t *testing.T) {
	client := memnet.HandlerClient(grpcLike())
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			resp, err := client.Get(fmt.Sprintf("http://anything/%d", i))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("HTTP/2.0 /%d", i); string(body) != want {
				errs <- fmt.Errorf("got %q, want %q", body, want)
			}
			if resp.Trailer.Get("Grpc-Status") != "0" {
				errs <- fmt.Errorf("trailers lost: %v", resp.Trailer)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkHop is what reaching a service costs, on a handler that answers
// at once (a 64-byte request, a gRPC-like body and trailer): called
// directly, through HandlerClient (the all-in-one binary), and over
// loopback TCP with HTTP/2 (split on one machine).
func BenchmarkHop(b *testing.B) {
	handler := grpcLike()
	b.Run("direct", func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodPost, "http://x/svc/Method", nil)
		for b.Loop() {
			handler.ServeHTTP(discard{h: http.Header{}}, req)
		}
	})
	b.Run("handler", func(b *testing.B) {
		benchmarkClient(b, memnet.HandlerClient(handler), "http://handler")
	})
	b.Run("tcp", func(b *testing.B) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Protocols: unencryptedHTTP2(), Handler: handler}
		go func() { _ = srv.Serve(lis) }()
		b.Cleanup(func() { _ = srv.Close() })
		benchmarkClient(b, &http.Client{Transport: memnet.H2CTransport(nil)}, "http://"+lis.Addr().String())
	})
}

func benchmarkClient(b *testing.B, client *http.Client, base string) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(base+"/svc/Method", "application/grpc", bytes.NewReader(make([]byte, 64)))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	})
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}
