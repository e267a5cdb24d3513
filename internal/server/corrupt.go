package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc"
)

// Data-corruption checks, as etcd's corrupt.go: members compare the HashKV of their
// key-value history at a common revision, asked of each other over the peer port
// (POST /members/hashkv, JSON HashKVRequest → HashKVResponse, as etcd's peer handler).
//
//   - InitialCorruptCheck (feature gate InitialCorruptCheck): before serving, this
//     member hashes its store at its current revision and asks its peers for the hash
//     at that revision; a peer at the same compacted revision with another hash makes
//     the member refuse to start ("found data inconsistency with peers").
//   - the periodic check (--corrupt-check-time): the leader hashes at its current
//     revision and asks every peer; a peer that answers with a header revision above
//     the leader's, a compacted revision above the leader's, or the same compacted
//     revision and another hash gets a CORRUPT alarm (through Raft).
//   - the compaction hash check (feature gate CompactHashCheck, every
//     --compact-hash-check-time): the leader takes the hashes its store computed at its
//     latest compactions (mvcc.Store.CompactionHashes, newest first) and asks the peers
//     for theirs at the same revision; peers that answer for the same compacted
//     revision are compared; the members whose hash differs from the most common one
//     (the leader's when there is a tie) get a CORRUPT alarm. Each revision is checked
//     once.
//
// Once CORRUPT is active, apply refuses every write with etcd's "etcdserver: corrupt
// cluster" (ErrCorrupt) on every member, until an operator disarms it.
const PathHashKV = "/members/hashkv"

// CorruptCheck is what StartCorruptChecks runs (cmd reads it from config.Integrity).
type CorruptCheck struct {
	CorruptCheckTime     time.Duration // 0: no periodic check
	CompactHashCheck     bool
	CompactHashCheckTime time.Duration
}

// maxHashKVAnswer bounds a peer's HashKV answer.
const maxHashKVAnswer = 1 << 20

// HashKVHandler serves PathHashKV; cmd mounts it on the peer port.
func (s *Server) HashKVHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if err != nil {
			http.Error(w, "error reading body", http.StatusBadRequest)
			return
		}
		req := &pb.HashKVRequest{}
		if err := json.Unmarshal(body, req); err != nil {
			http.Error(w, "error unmarshalling request", http.StatusBadRequest)
			return
		}
		resp, err := s.HashKV(r.Context(), req.Revision)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrCompacted) || errors.Is(err, ErrFutureRev) {
				code = http.StatusBadRequest
			}
			http.Error(w, err.Error(), code)
			return
		}
		resp.Header = s.Header()
		out, err := json.Marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}

// peerHash is one peer's answer to a HashKV at a revision.
type peerHash struct {
	id   uint64
	resp *pb.HashKVResponse
	err  error
}

// peerHashes asks every other member (learners included) for its HashKV at rev, at
// once, each through its peer URLs in turn.
func (s *Server) peerHashes(ctx context.Context, rev int64) []peerHash {
	cl, err := s.app.Members()
	if err != nil {
		return nil
	}
	var peers []*membership.Member
	for _, id := range cl.MemberIDs() {
		if id != s.cfg.MemberID {
			peers = append(peers, cl.Member(id))
		}
	}
	out := make([]peerHash, len(peers))
	var wg sync.WaitGroup
	for i, m := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.askHashKV(ctx, m.PeerURLs, rev)
			out[i] = peerHash{id: m.ID, resp: resp, err: err}
		}()
	}
	wg.Wait()
	return out
}

func (s *Server) askHashKV(ctx context.Context, urls []string, rev int64) (*pb.HashKVResponse, error) {
	client := s.cfg.PeerClient
	if client == nil {
		client = http.DefaultClient
	}
	body, err := json.Marshal(&pb.HashKVRequest{Revision: rev})
	if err != nil {
		return nil, err
	}
	err = errors.New("no peer URL")
	for _, u := range urls {
		rctx, cancel := context.WithTimeout(ctx, s.reqTimeout())
		req, rerr := http.NewRequestWithContext(rctx, http.MethodPost, strings.TrimSuffix(u, "/")+PathHashKV, bytes.NewReader(body))
		if rerr != nil {
			cancel()
			err = rerr
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, derr := client.Do(req)
		if derr != nil {
			cancel()
			err = derr
			continue
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxHashKVAnswer))
		resp.Body.Close()
		cancel()
		switch {
		case rerr != nil:
			err = rerr
		case resp.StatusCode == http.StatusOK:
			out := &pb.HashKVResponse{}
			if err := json.Unmarshal(b, out); err != nil {
				return nil, err
			}
			return out, nil
		default:
			msg := strings.TrimSpace(string(b))
			switch msg {
			case ErrCompacted.Error():
				return nil, ErrCompacted
			case ErrFutureRev.Error():
				return nil, ErrFutureRev
			}
			err = fmt.Errorf("peer answered %s: %s", resp.Status, msg)
		}
	}
	return nil, err
}

// ErrDataInconsistency: the initial check found a peer with the same history and
// another hash.
var ErrDataInconsistency = errors.New("found data inconsistency with peers")

// InitialCorruptCheck is etcd's initial check: compare this member's hash at its
// current revision with its peers'. cmd runs it before serving clients when the
// InitialCorruptCheck gate is on, and stops the member on ErrDataInconsistency.
func (s *Server) InitialCorruptCheck(ctx context.Context) error {
	s.lg.Info("starting initial corruption check", zap.String("local-member-id", membership.IDString(s.cfg.MemberID)))
	h, err := s.HashKV(ctx, 0)
	if err != nil {
		return err
	}
	mismatch := 0
	for _, p := range s.peerHashes(ctx, h.HashRevision) {
		fields := []zap.Field{zap.String("local-member-id", membership.IDString(s.cfg.MemberID)),
			zap.String("remote-peer-id", membership.IDString(p.id)), zap.Int64("local-member-revision", h.HashRevision)}
		switch {
		case p.resp != nil && p.resp.Hash != h.Hash && p.resp.CompactRevision == h.CompactRevision:
			s.lg.Warn("found different hash values from remote peer", append(fields,
				zap.Uint32("local-member-hash", h.Hash), zap.Uint32("remote-peer-hash", p.resp.Hash))...)
			mismatch++
		case p.resp != nil && p.resp.Hash != h.Hash:
			s.lg.Warn("found different compact revision values from remote peer", append(fields,
				zap.Int64("local-member-compact-revision", h.CompactRevision),
				zap.Int64("remote-peer-compact-revision", p.resp.CompactRevision))...)
		case errors.Is(p.err, ErrFutureRev):
			s.lg.Warn("cannot fetch hash from slow remote peer", append(fields, zap.Error(p.err))...)
		case errors.Is(p.err, ErrCompacted):
			s.lg.Warn("cannot fetch hash from remote peer; local member is behind", append(fields, zap.Error(p.err))...)
		case p.err != nil:
			s.lg.Warn("cannot fetch hash from remote peer", append(fields, zap.Error(p.err))...)
		}
	}
	if mismatch > 0 {
		return fmt.Errorf("%s %w", membership.IDString(s.cfg.MemberID), ErrDataInconsistency)
	}
	s.lg.Info("initial corruption checking passed; no corruption", zap.String("local-member-id", membership.IDString(s.cfg.MemberID)))
	return nil
}

// StartCorruptChecks starts the leader's periodic checks that cc turns on. Call it
// once, after New and before Stop.
func (s *Server) StartCorruptChecks(cc CorruptCheck) {
	if cc.CorruptCheckTime > 0 {
		s.wg.Add(1)
		go s.everyWhileLeader(cc.CorruptCheckTime, s.periodicCorruptCheck)
	}
	if cc.CompactHashCheck && cc.CompactHashCheckTime > 0 {
		s.wg.Add(1)
		var checked int64
		go s.everyWhileLeader(cc.CompactHashCheckTime, func(ctx context.Context) { s.compactHashCheck(ctx, &checked) })
	}
}

func (s *Server) everyWhileLeader(every time.Duration, f func(ctx context.Context)) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if !s.isLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every+s.reqTimeout())
		go func() {
			select {
			case <-s.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		f(ctx)
		cancel()
	}
}

// periodicCorruptCheck is etcd's PeriodicCheck on the leader.
func (s *Server) periodicCorruptCheck(ctx context.Context) {
	h, err := s.HashKV(ctx, 0)
	if err != nil {
		return
	}
	for _, p := range s.peerHashes(ctx, h.HashRevision) {
		if p.resp == nil {
			continue
		}
		fields := []zap.Field{zap.String("leader-id", membership.IDString(s.cfg.MemberID)),
			zap.String("follower-id", membership.IDString(p.id)),
			zap.Int64("leader-revision", h.HashRevision), zap.Int64("follower-revision", p.resp.GetHeader().GetRevision()),
			zap.Int64("leader-compact-revision", h.CompactRevision), zap.Int64("follower-compact-revision", p.resp.CompactRevision),
			zap.Uint32("leader-hash", h.Hash), zap.Uint32("follower-hash", p.resp.Hash)}
		switch {
		case p.resp.CompactRevision > h.CompactRevision:
			s.lg.Warn("compact revision from follower must be less than or equal to leader's", fields...)
		case p.resp.CompactRevision == h.CompactRevision && p.resp.HashRevision == h.HashRevision && p.resp.Hash != h.Hash:
			s.lg.Warn("same compact revision then hashes must match", fields...)
		default:
			continue
		}
		s.raiseCorrupt(ctx, p.id)
	}
}

// compactHashCheck is etcd's CompactHashCheck on the leader: the newest compaction
// hash above *checked that peers can be compared on.
func (s *Server) compactHashCheck(ctx context.Context, checked *int64) {
	hashes := s.store.CompactionHashes()
	for i := len(hashes) - 1; i >= 0; i-- {
		h := hashes[i]
		if h.Rev <= *checked {
			return
		}
		if s.compareCompactHash(ctx, h) {
			*checked = h.Rev
			return
		}
	}
}

// compareCompactHash compares the peers' hashes at h.Rev with h; false when no peer
// could be compared (they have not compacted there yet).
func (s *Server) compareCompactHash(ctx context.Context, h mvcc.KeyValueHash) bool {
	compact := h.CompactRev
	if compact == 0 {
		compact = -1
	}
	groups := map[uint32][]uint64{h.Hash: {s.cfg.MemberID}}
	compared := 0
	for _, p := range s.peerHashes(ctx, h.Rev) {
		if p.resp == nil || p.resp.CompactRevision != compact || p.resp.HashRevision != h.Rev {
			continue
		}
		compared++
		groups[p.resp.Hash] = append(groups[p.resp.Hash], p.id)
	}
	if compared == 0 {
		return false
	}
	if len(groups) == 1 {
		s.lg.Info("successfully checked hash on followers", zap.Int64("revision", h.Rev), zap.Int("peers", compared))
		return true
	}
	best := h.Hash
	for hash, ids := range groups {
		if len(ids) > len(groups[best]) {
			best = hash
		}
	}
	for hash, ids := range groups {
		if hash == best {
			continue
		}
		for _, id := range ids {
			s.lg.Error("failed compaction hash check", zap.Int64("revision", h.Rev), zap.Int64("compact-revision", compact),
				zap.String("member-id", membership.IDString(id)), zap.Uint32("hash", hash), zap.Uint32("expected-hash", best))
			s.raiseCorrupt(ctx, id)
		}
	}
	return true
}

// raiseCorrupt activates the CORRUPT alarm for member id through Raft.
func (s *Server) raiseCorrupt(ctx context.Context, id uint64) {
	_, err := s.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT})
	if err != nil {
		s.lg.Warn("failed to raise the CORRUPT alarm", zap.String("member-id", membership.IDString(id)), zap.Error(err))
		return
	}
	s.lg.Error("raised the CORRUPT alarm", zap.String("member-id", membership.IDString(id)))
}
