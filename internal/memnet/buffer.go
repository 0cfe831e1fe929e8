package memnet

import (
	"io"
	"sync"
)

// bufferBytes is how much a buffer holds before a writer waits for the
// reader, like a socket's buffers.
const bufferBytes = 256 << 10

// buffer is a response body between a handler and its client: a pipe
// whose writes return once their bytes are queued.
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
