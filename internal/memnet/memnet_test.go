package memnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/beepchat/beep/internal/memnet"
)

func serve(t *testing.T) *memnet.Listener {
	t.Helper()
	l := memnet.Listen("test")
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
		w.Header().Set("Grpc-Status", "0")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l
}

func TestConcurrentRequestsOverHTTP2(t *testing.T) {
	l := serve(t)
	client := l.Client()
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

func TestClosedListenerRefuses(t *testing.T) {
	l := memnet.Listen("closed")
	_ = l.Close()
	if _, err := l.DialContext(context.Background(), "tcp", "x"); !errors.Is(err, memnet.ErrClosed) {
		t.Fatalf("dial after close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, memnet.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	l := memnet.Listen("nobody accepts")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.DialContext(ctx, "tcp", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial without accept: %v", err)
	}
}
