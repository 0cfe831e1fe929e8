package memnet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/beepchat/beep/internal/memnet"
)

func serve(t testing.TB) *memnet.Listener {
	t.Helper()
	l := memnet.Listen("test")
	srv := &http.Server{Protocols: unencryptedHTTP2(), Handler: grpcLike()}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l
}

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

// TestConnIsANetConn runs x/net's conformance suite for net.Conn on both
// ends of a connection made by Dial and Accept: I/O, close, deadlines,
// concurrent calls.
func TestConnIsANetConn(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		l := memnet.Listen("conformance")
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		c1, err = l.DialContext(context.Background(), "tcp", "x")
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = <-accepted
		return c1, c2, func() { _ = c1.Close(); _ = c2.Close(); _ = l.Close() }, nil
	})
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

// TestConcurrentDials: every dial gets its own connection to one accepted
// peer, whatever the interleaving.
func TestConcurrentDials(t *testing.T) {
	l := memnet.Listen("echo")
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			c, err := l.DialContext(t.Context(), "tcp", "x")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			want := bytes.Repeat([]byte{byte(i)}, 100_000+i) // several buffers' worth would block a synchronous pipe
			go func() { _, _ = c.Write(want) }()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
				errs <- fmt.Errorf("dial %d: echoed %d bytes wrong: %v", i, len(got), err)
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
	accepting := make(chan error, 1)
	go func() { _, err := l.Accept(); accepting <- err }()
	_ = l.Close()
	if err := <-accepting; !errors.Is(err, memnet.ErrClosed) {
		t.Fatalf("accept waiting when closed: %v", err)
	}
	if _, err := l.DialContext(context.Background(), "tcp", "x"); !errors.Is(err, memnet.ErrClosed) {
		t.Fatalf("dial after close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, memnet.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, err := l.Client().Get("http://closed/"); err == nil {
		t.Fatal("an HTTP request reached a closed listener")
	}
}

// TestCloseLikeTCP: the peer of a closed end reads what was written, then
// io.EOF, and cannot write; the closed end itself says net.ErrClosed.
func TestCloseLikeTCP(t *testing.T) {
	a, b := memnet.Pipe(nil, nil)
	if _, err := a.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	if got, err := io.ReadAll(b); string(got) != "last words" || err != nil {
		t.Fatalf("the peer read %q, %v", got, err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("writing to a closed peer: %v", err)
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("reading a closed end: %v", err)
	}
	if err := a.Close(); err == nil {
		t.Fatal("closing twice succeeded")
	}
}

// TestDeadlines: blocked reads and writes end at their deadline with a
// timeout error, and a later deadline makes the connection usable again.
func TestDeadlines(t *testing.T) {
	a, b := memnet.Pipe(nil, nil)
	defer a.Close()
	defer b.Close()
	timeout := func(err error) bool {
		var ne net.Error
		return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
	}
	deadline := time.Now().Add(20 * time.Millisecond)
	_ = a.SetReadDeadline(deadline)
	if _, err := a.Read(make([]byte, 1)); !timeout(err) || time.Now().Before(deadline) {
		t.Fatalf("read returned %v, %v before its deadline", err, time.Until(deadline))
	}
	_ = a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := a.Write(make([]byte, 1<<20)) // more than b buffers: blocks
	if !timeout(err) || n == 0 || n >= 1<<20 {
		t.Fatalf("write past its deadline: %d bytes, %v", n, err)
	}
	_ = a.SetDeadline(time.Time{})
	go func() { _, _ = io.CopyN(io.Discard, b, int64(n)); _, _ = b.Write([]byte("!")) }()
	got := make([]byte, 1)
	if _, err := a.Read(got); err != nil || got[0] != '!' {
		t.Fatalf("read after clearing the deadline: %q, %v", got, err)
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

// BenchmarkHop is the cost of reaching a handler over HTTP/2: called
// directly, through memnet (the all-in-one process), through loopback TCP
// (the distributed mode on one machine).
func BenchmarkHop(b *testing.B) {
	handler := grpcLike()
	b.Run("direct", func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodPost, "http://x/svc/Method", nil)
		for b.Loop() {
			handler.ServeHTTP(discard{h: http.Header{}}, req)
		}
	})
	b.Run("memnet", func(b *testing.B) {
		benchmarkClient(b, serve(b).Client(), "http://memnet")
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
