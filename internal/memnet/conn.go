package memnet

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// bufferBytes is how much one direction of a connection holds before a
// writer waits for the reader, like a socket's buffers: enough for HTTP/2
// frames to pass without a goroutine hand-off per write.
const bufferBytes = 256 << 10

// Pipe returns the two ends of a buffered in-memory connection: what one
// writes, the other reads. Unlike net.Pipe, a write returns as soon as its
// bytes are buffered. Both ends support deadlines and Close as a TCP
// connection does: after Close the peer reads what was buffered, then
// io.EOF, and its writes fail.
func Pipe(local, remote net.Addr) (net.Conn, net.Conn) {
	ab, ba := newBuffer(), newBuffer()
	a := &conn{in: ba, out: ab, local: local, remote: remote, closed: make(chan struct{})}
	b := &conn{in: ab, out: ba, local: remote, remote: local, closed: make(chan struct{})}
	a.readDeadline, a.writeDeadline = newDeadline(), newDeadline()
	b.readDeadline, b.writeDeadline = newDeadline(), newDeadline()
	return a, b
}

// buffer is one direction of a connection.
type buffer struct {
	mu       sync.Mutex
	data     []byte
	off      int  // data[off:] is unread
	eof      bool // the writing end closed
	broken   bool // the reading end closed: writes fail
	readable chan struct{}
	writable chan struct{}
}

func newBuffer() *buffer {
	return &buffer{readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

// signal wakes one waiter of c, if none is already due to wake.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// read moves buffered bytes into p; ok is false when there are none yet.
func (b *buffer) read(p []byte) (n int, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off == len(b.data) {
		if b.eof {
			return 0, true, io.EOF
		}
		return 0, false, nil
	}
	n = copy(p, b.data[b.off:])
	b.off += n
	if b.off == len(b.data) {
		b.data, b.off = b.data[:0], 0
	} else {
		signal(b.readable) // more for the next reader
	}
	signal(b.writable)
	return n, true, nil
}

// write buffers what of p fits; ok is false when nothing does yet.
func (b *buffer) write(p []byte) (n int, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken || b.eof {
		return 0, true, io.ErrClosedPipe
	}
	unread := len(b.data) - b.off
	n = min(len(p), bufferBytes-unread)
	if n == 0 {
		return 0, false, nil
	}
	if b.off > 0 && len(b.data)+n > cap(b.data) {
		b.data, b.off = b.data[:copy(b.data, b.data[b.off:])], 0
	}
	b.data = append(b.data, p[:n]...)
	signal(b.readable)
	if unread+n < bufferBytes {
		signal(b.writable) // room for the next writer
	}
	return n, true, nil
}

// closeWrite makes the reader see io.EOF once it has read everything.
func (b *buffer) closeWrite() {
	b.mu.Lock()
	b.eof = true
	b.mu.Unlock()
	signal(b.readable)
	signal(b.writable)
}

// closeRead makes writes fail and drops what was not read.
func (b *buffer) closeRead() {
	b.mu.Lock()
	b.broken = true
	b.data, b.off = nil, 0
	b.mu.Unlock()
	signal(b.readable)
	signal(b.writable)
}

// conn is one end of a Pipe.
type conn struct {
	in, out       *buffer
	local, remote net.Addr
	readDeadline  *deadline
	writeDeadline *deadline
	closeOnce     sync.Once
	closed        chan struct{}
}

func (c *conn) Read(p []byte) (int, error) {
	for {
		select {
		case <-c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case <-c.readDeadline.expired():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, ok, err := c.in.read(p)
		if ok {
			if err != nil && err != io.EOF {
				err = c.opError("read", err)
			}
			return n, err
		}
		select {
		case <-c.in.readable:
		case <-c.closed:
		case <-c.readDeadline.expired():
		}
	}
}

func (c *conn) Write(p []byte) (int, error) {
	written := 0
	for {
		select {
		case <-c.closed:
			return written, c.opError("write", net.ErrClosed)
		case <-c.writeDeadline.expired():
			return written, c.opError("write", os.ErrDeadlineExceeded)
		default:
		}
		if written == len(p) {
			return written, nil
		}
		n, ok, err := c.out.write(p[written:])
		written += n
		if err != nil {
			return written, c.opError("write", err)
		}
		if ok {
			continue
		}
		select {
		case <-c.out.writable:
		case <-c.closed:
		case <-c.writeDeadline.expired():
		}
	}
}

// Close ends both directions: the peer reads what is buffered, then
// io.EOF; its writes fail.
func (c *conn) Close() error {
	err := c.opError("close", net.ErrClosed)
	c.closeOnce.Do(func() {
		close(c.closed)
		c.out.closeWrite()
		c.in.closeRead()
		err = nil
	})
	return err
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: network, Source: c.local, Addr: c.remote, Err: err}
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.set(t)
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.set(t)
	return nil
}

// deadline is a channel closed when a time passes (as in net.Pipe).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{}
}

func newDeadline() *deadline { return &deadline{passed: make(chan struct{})} }

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.passed // the timer fired: wait until it has closed the channel
	}
	d.timer = nil
	closed := isClosed(d.passed)
	if t.IsZero() {
		if closed {
			d.passed = make(chan struct{})
		}
		return
	}
	if wait := time.Until(t); wait > 0 {
		if closed {
			d.passed = make(chan struct{})
		}
		passed := d.passed
		d.timer = time.AfterFunc(wait, func() { close(passed) })
		return
	}
	if !closed {
		close(d.passed)
	}
}

// expired is closed once the deadline has passed.
func (d *deadline) expired() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
