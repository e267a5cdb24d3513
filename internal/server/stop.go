package server

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// Why a server stopped on its own (Err). A member in this state must not go on
// serving: cmd/metastore exits non-zero, as etcd does on a WAL or backend error.
var (
	// ErrRaftStopped: the raft node's loop ended by itself (a WAL write failed).
	ErrRaftStopped = errors.New("server: the raft node stopped")
	// ErrApplyFailed: the state machine failed to apply a committed entry; its state
	// would diverge from the log if it went on.
	ErrApplyFailed = errors.New("server: applying committed entries failed")
)

// Stop stops the server's loops and the raft node, and returns once every loop has
// ended (the apply loop included), so that the caller may then close the engine. It
// does not close the engine. It is safe to call more than once and from several
// goroutines; every call waits for the end. It must not be called from the server's
// own loops (they call stop).
func (s *Server) Stop() {
	s.stop(nil)
	<-s.done
}

// stop begins stopping the server, once; cause (nil for Stop) is what Err reports.
// It does not wait, so the server's loops may call it.
func (s *Server) stop(cause error) {
	s.stopOnce.Do(func() {
		s.stopErr = cause
		close(s.stopping)
		go func() {
			s.node.Stop()
			s.wg.Wait()
			close(s.done)
		}()
	})
}

// Done is closed once the server has stopped: by Stop, or on its own (see Err).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err tells why the server stopped on its own: an error wrapping ErrRaftStopped or
// ErrApplyFailed and the cause; nil after Stop. It waits for Done.
func (s *Server) Err() error {
	<-s.done
	return s.stopErr
}

// watchNode stops the server when the raft node stops by itself: with the Ready loop
// gone nothing commits or applies, and the server must not keep serving reads.
func (s *Server) watchNode() {
	defer s.wg.Done()
	select {
	case <-s.node.Done():
		var cause error
		if err := s.node.Err(); err != nil {
			cause = fmt.Errorf("%w: %w", ErrRaftStopped, err)
			s.lg.Error("raft node stopped; stopping the server", zap.Error(err))
		}
		s.stop(cause)
	case <-s.stopping:
	}
}
