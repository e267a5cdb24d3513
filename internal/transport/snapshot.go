package transport

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// startSnapshot sends m (a MsgSnap) to p on its own goroutine and reports the outcome.
func (t *Transport) startSnapshot(p *peer, m *raftpb.Message) {
	t.mu.Lock()
	select {
	case <-t.stopc:
		t.mu.Unlock()
		t.raft().ReportSnapshot(p.id, raft.SnapshotFailure)
		return
	default:
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		start := time.Now()
		md, size, err := t.sendSnapshot(p, m)
		t.cfg.Observer.SnapshotSent(p.id, time.Since(start), err)
		if err != nil {
			t.lg.Warn("sending snapshot failed", zap.String("remote-member-id", idString(p.id)), zap.Error(err))
			t.raft().ReportUnreachable(p.id)
			t.raft().ReportSnapshot(p.id, raft.SnapshotFailure)
			return
		}
		t.lg.Info("sent snapshot", zap.String("remote-member-id", idString(p.id)),
			zap.Uint64("index", md.GetIndex()), zap.Uint64("term", md.GetTerm()),
			zap.Int64("bytes", size), zap.Duration("took", time.Since(start)))
		t.raft().ReportSnapshot(p.id, raft.SnapshotFinish)
	}()
}

// sendSnapshot pins the state machine, rewrites m's snapshot metadata to the pinned
// state's position and streams message and state in one POST.
func (t *Transport) sendSnapshot(p *peer, m *raftpb.Message) (*raftpb.SnapshotMetadata, int64, error) {
	if t.cfg.Snapshots == nil {
		return nil, 0, fmt.Errorf("transport: no snapshot source configured")
	}
	out, err := t.cfg.Snapshots.Open()
	if err != nil {
		return nil, 0, fmt.Errorf("transport: pinning the state machine: %w", err)
	}
	defer out.Close()
	md := out.Metadata()
	if want := m.GetSnapshot().GetMetadata().GetIndex(); md.GetIndex() < want {
		return nil, 0, fmt.Errorf("transport: state machine at %d is behind raft's snapshot %d", md.GetIndex(), want)
	}
	m.Snapshot = &raftpb.Snapshot{Metadata: md}
	head, err := proto.Marshal(m)
	if err != nil {
		return nil, 0, err
	}

	u := p.url()
	if u == "" {
		return nil, 0, fmt.Errorf("transport: no URL for peer %s", idString(p.id))
	}
	pr, pw := io.Pipe()
	var total int64
	written := make(chan struct{})
	go func() {
		defer close(written)
		n, err := pw.Write(append(binary.AppendUvarint(nil, uint64(len(head))), head...))
		var body int64
		if err == nil {
			body, err = out.WriteTo(pw)
		}
		pw.CloseWithError(err)
		total = int64(n) + body
	}()
	// The writer must be done with the pinned state before out.Close (deferred above).
	defer func() {
		pr.CloseWithError(io.ErrClosedPipe)
		<-written
	}()

	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, u+pathSnapshot, pr)
	if err != nil {
		return nil, 0, err
	}
	p.setHeaders(req)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := t.snapClient.Do(req)
	if err != nil {
		p.failed(u, err)
		return nil, 0, err
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return nil, 0, err
	}
	<-written
	return md, total, nil
}
