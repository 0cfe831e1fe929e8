package memnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
)

// HandlerClient returns an HTTP client whose requests are served by calling
// h in this process: no connection, no HTTP/2 framing, no flow-control
// window. It keeps what the services rely on from HTTP/2: streaming both
// ways at once, trailers, the status and headers before the body, and
// cancellation both ways (the client's context reaches the handler, and
// closing the response body cancels the handler's context). The response
// body is buffered like a socket (a write returns once queued, up to 256
// KiB), so a handler that writes faster than its client reads gets ahead,
// then waits; and a reader that fell behind takes what queued in one read.
func HandlerClient(h http.Handler) *http.Client {
	return &http.Client{Transport: &handlerTransport{handler: h}}
}

// handlerTransport is HandlerClient's transport.
type handlerTransport struct{ handler http.Handler }

// RoundTrip starts the handler on its own goroutine and returns once it has
// committed its status and headers (its first write, flush, WriteHeader,
// or its return).
func (t *handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	in := req.Clone(ctx)
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/2.0", 2, 0
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "memnet"
	if in.Host == "" {
		in.Host = req.URL.Host
	}
	if in.Body == nil {
		in.Body = http.NoBody
	}
	w := &handlerWriter{header: http.Header{}, body: newBuffer(), cancel: cancel, committed: make(chan struct{}), ctx: ctx, clientCtx: req.Context()}
	w.resp = &http.Response{Proto: "HTTP/2.0", ProtoMajor: 2, Request: req, ContentLength: -1, Trailer: http.Header{},
		Body: &handlerBody{w: w}}
	go w.serve(t.handler, in, req.Body)
	select {
	case <-w.committed:
		return w.resp, nil
	case <-req.Context().Done():
		// The handler sees the same cancellation and ends on its own.
		return nil, req.Context().Err()
	}
}

// handlerWriter is the handler's http.ResponseWriter (and Flusher).
type handlerWriter struct {
	// ctx is the handler's; clientCtx, the request's as the client made it.
	ctx, clientCtx context.Context
	cancel         context.CancelFunc
	header         http.Header
	body           *buffer
	resp           *http.Response

	// status is 0 until committed; only the handler's goroutine commits.
	status int
	// failed is what the reader gets instead of io.EOF (a panic).
	failed error
	// trailers are set by finish, before the body's end.
	trailers  http.Header
	committed chan struct{}
}

func (w *handlerWriter) serve(h http.Handler, req *http.Request, body io.ReadCloser) {
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			// As net/http's server would, minus the stack: the handler's
			// own recovery (connect's, the gateway's) comes first.
			w.failed = fmt.Errorf("memnet: handler panicked: %v", p)
		} else if p != nil {
			w.failed = fmt.Errorf("memnet: handler aborted the response")
		}
		w.commit(http.StatusOK)
		w.finish()
		w.cancel() // as net/http's server does once the handler returned
		if body != nil {
			_ = body.Close()
		}
	}()
	h.ServeHTTP(w, req)
}

func (w *handlerWriter) Header() http.Header { return w.header }

func (w *handlerWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return // informational: not passed on
	}
	w.commit(code)
}

func (w *handlerWriter) Write(p []byte) (int, error) {
	w.commit(http.StatusOK)
	written := 0
	for written < len(p) {
		n, ok, err := w.body.write(p[written:])
		written += n
		if err != nil {
			return written, err
		}
		if ok {
			continue
		}
		select {
		case <-w.body.writable:
		case <-w.ctx.Done():
			return written, w.ctx.Err()
		}
	}
	return written, nil
}

// Flush commits the headers; what was written is already the reader's.
func (w *handlerWriter) Flush() { w.commit(http.StatusOK) }

// commit makes status and the headers so far the response, once.
func (w *handlerWriter) commit(status int) {
	if w.status != 0 {
		return
	}
	w.status = status
	h := make(http.Header, len(w.header))
	for k, v := range w.header {
		switch {
		case k == "Trailer":
			for _, names := range v {
				for name := range strings.SplitSeq(names, ",") {
					if name = strings.TrimSpace(name); name != "" {
						w.resp.Trailer[textproto.CanonicalMIMEHeaderKey(name)] = nil
					}
				}
			}
		case strings.HasPrefix(k, http.TrailerPrefix):
		default:
			h[k] = append([]string(nil), v...)
		}
	}
	w.resp.StatusCode, w.resp.Status = status, fmt.Sprintf("%d %s", status, http.StatusText(status))
	w.resp.Header = h
	close(w.committed)
}

// finish computes the trailers, then ends the body. The reader sets them
// on the response when it reads io.EOF, as net/http's transport does, so
// that nobody reads the map while it is written.
func (w *handlerWriter) finish() {
	t := http.Header{}
	for k := range w.resp.Trailer {
		if v, ok := w.header[k]; ok {
			t[k] = append([]string(nil), v...)
		}
	}
	for k, v := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			key := textproto.CanonicalMIMEHeaderKey(name)
			t[key] = append(t[key], v...)
		}
	}
	w.trailers = t
	w.body.closeWrite()
}

// handlerBody is the response body the client reads.
type handlerBody struct {
	w      *handlerWriter
	once   sync.Once
	closed atomic.Bool
	eof    bool
}

var errReadAfterClose = errors.New("memnet: read on closed response body")

func (b *handlerBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		// A canceled request reads no further, as a reset stream.
		if err := b.w.clientCtx.Err(); err != nil {
			return 0, err
		}
		if b.closed.Load() {
			return 0, errReadAfterClose
		}
		n, ok, err := b.w.body.read(p)
		if !ok {
			select {
			case <-b.w.body.readable:
			case <-b.w.ctx.Done():
			}
			continue
		}
		if err == io.EOF && !b.eof {
			b.eof = true
			for k, v := range b.w.trailers {
				b.w.resp.Trailer[k] = v
			}
		}
		if err == io.EOF && b.w.failed != nil {
			err = b.w.failed
		}
		return n, err
	}
}

// Close ends the exchange: the handler's context is canceled and its
// writes fail.
func (b *handlerBody) Close() error {
	b.once.Do(func() {
		b.closed.Store(true)
		b.w.body.closeRead()
		b.w.cancel()
	})
	return nil
}
