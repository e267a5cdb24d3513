package grpcapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/server"
)

// Snapshotter is implemented by a backend that streams a point-in-time copy of its
// whole store (server.Server).
type Snapshotter interface {
	Snapshot(ctx context.Context) (*server.Snapshot, error)
}

// snapshotChunkBytes is the blob size of one SnapshotResponse: larger than etcd's
// 32 KiB for fewer messages, well under gRPC's default 4 MiB receive limit of clients
// other than clientv3 (which accepts up to 2 GiB).
const snapshotChunkBytes = 1 << 20

// Snapshot streams the backend's pinned state as etcd's SnapshotResponses, which
// clientv3.SnapshotWithVersion and `etcdctl snapshot save` concatenate into a file:
//
//   - blobs of snapshotChunkBytes (the last one shorter) of the backup (snap's backup
//     format: stream and padding), each with version (the storage version, "3.7.0",
//     what etcd v3.7 sends) and remaining_bytes: the bytes still to come by the
//     server's size estimate, never below the 32 of the digest (etcd knows the exact
//     size of its bbolt file; we know ours only at the end);
//   - then one message whose blob is the SHA-256 of all blobs before it, with
//     remaining_bytes 0, as etcd sends its digest.
//
// The first message carries the header of the pinned state. A client that cancels or
// disconnects makes the next Send fail; the pinned state is released on return and
// there is nothing on disk to remove. The backend's errors go through toGRPCError; a
// failed Send is returned as it is (the stream's own status).
func (s *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	sb, ok := s.b.(Snapshotter)
	if !ok {
		return s.UnimplementedMaintenanceServer.Snapshot(nil, srv)
	}
	sn, err := sb.Snapshot(srv.Context())
	if err != nil {
		return toGRPCError(err)
	}
	defer sn.Close()
	cw := &chunkWriter{srv: srv, est: sn.SizeEstimate(), hdr: s.hdr.fill(sn.Header())}
	digest, _, err := sn.Stream(cw)
	if err == nil {
		err = cw.flush()
	}
	if err != nil {
		if cw.sendErr != nil {
			return cw.sendErr
		}
		return toGRPCError(err)
	}
	return srv.Send(&pb.SnapshotResponse{Header: cw.header(), Blob: digest, Version: storageVersion})
}

// chunkWriter cuts what is written to it into SnapshotResponses of snapshotChunkBytes.
type chunkWriter struct {
	srv     pb.Maintenance_SnapshotServer
	buf     []byte
	sent    int64
	est     int64
	hdr     *pb.ResponseHeader // for the first message only
	sendErr error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.buf == nil {
			// A new buffer per message: gRPC may still read a sent message.
			c.buf = make([]byte, 0, snapshotChunkBytes)
		}
		m := min(len(p), snapshotChunkBytes-len(c.buf))
		c.buf = append(c.buf, p[:m]...)
		p = p[m:]
		if len(c.buf) == snapshotChunkBytes {
			if err := c.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush sends the buffered bytes, if any.
func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	c.sent += int64(len(c.buf))
	resp := &pb.SnapshotResponse{
		Header:         c.header(),
		RemainingBytes: uint64(max(c.est-c.sent, 32)),
		Blob:           c.buf,
		Version:        storageVersion,
	}
	c.buf = nil
	if err := c.srv.Send(resp); err != nil {
		c.sendErr = err
		return err
	}
	return nil
}

// header returns the pinned state's header the first time, nil after.
func (c *chunkWriter) header() *pb.ResponseHeader {
	h := c.hdr
	c.hdr = nil
	return h
}
