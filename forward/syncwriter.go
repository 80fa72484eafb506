package forward

import (
	"io"
	"sync"
)

// SyncWriter makes w safe for concurrent use: each Write is whole, never
// interleaved with another. Nil becomes io.Discard. Logs that several
// goroutines share (a daemon's, a probe server's) write through one.
func SyncWriter(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	if _, ok := w.(*syncWriter); ok {
		return w
	}
	return &syncWriter{w: w}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
