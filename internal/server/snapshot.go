package server

import (
	"context"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
)

// Snapshot is one point-in-time state of this member's whole store, pinned for the
// Maintenance Snapshot RPC. It is an engine snapshot (Pebble's: a sequence number,
// nothing on disk): apply, compaction and snapshot installs go on while it is
// streamed, and a client that goes away leaves nothing behind once Close is called.
// Its only cost is that the engine keeps the versions it can see until then.
type Snapshot struct {
	lg  *zap.Logger
	es  storage.Snapshot
	hdr *pb.ResponseHeader
	est int64
}

// Snapshot pins the store's current state (taken through mvcc.Store, so never half a
// snapshot install). The caller must Close it.
func (s *Server) Snapshot(ctx context.Context) (_ *Snapshot, err error) {
	defer translate(&err)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	es := s.store.NewSnapshot()
	rev, err := storage.StoreRevision(es)
	if err != nil {
		es.Close()
		return nil, err
	}
	h := s.Header()
	h.Revision = rev
	return &Snapshot{lg: s.lg, es: es, hdr: h, est: int64(storage.StateMachineSize(s.cfg.Engine))}, nil
}

// Header is the response header of the pinned state: its revision, this member's
// identity and raft term.
func (sn *Snapshot) Header() *pb.ResponseHeader { return sn.hdr }

// SizeEstimate guesses the bytes Stream will write (the engine's estimate of the
// state machine's size): the stream's length is known only at its end.
func (sn *Snapshot) SizeEstimate() int64 { return sn.est }

// Stream writes the pinned state to w as a backup (snap's backup format) but for its
// last 32 bytes, the SHA-256 digest, which it returns: the RPC sends it as a message of
// its own, as etcd does. It stops at w's first error (a client gone).
func (sn *Snapshot) Stream(w io.Writer) (digest []byte, n int64, err error) {
	start := time.Now()
	sn.lg.Info("sending database snapshot to client",
		zap.Int64("revision", sn.hdr.GetRevision()), zap.Int64("estimated-bytes", sn.est))
	bw := snap.NewBackupWriter(w)
	defer func() {
		if err != nil {
			sn.lg.Warn("database snapshot stream ended early",
				zap.Int64("sent-bytes", bw.Written()), zap.Duration("took", time.Since(start)), zap.Error(err))
		}
	}()
	if _, err := snap.Write(bw, sn.es); err != nil {
		return nil, bw.Written(), err
	}
	digest, err = bw.Pad()
	if err != nil {
		return nil, bw.Written(), err
	}
	sn.lg.Info("sent database snapshot to client",
		zap.Int64("total-bytes", bw.Written()+int64(len(digest))), zap.Duration("took", time.Since(start)))
	return digest, bw.Written(), nil
}

// Close releases the pinned state.
func (sn *Snapshot) Close() error { return sn.es.Close() }
