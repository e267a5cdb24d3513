package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/membership"
)

// Only the leader knows whether a learner is in sync, so a member that does not lead
// forwards MemberPromote to the leader over the peer port, as etcd:
//
//	POST <leader peer URL>/members/promote/<decimal ID>
//	  200 [member…] (the list after the change, etcd's membership.Member JSON)
//	  404 the ID is not a member; 412 not a learner, or not in sync (text says which);
//	  408 timed out; 500 anything else (text)

// PathPromote is the peer port's prefix of a forwarded promotion.
const PathPromote = "/members/promote/"

// ServePromote serves a promotion forwarded by another member (transport.Membership).
func (s *Server) ServePromote(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Etcd-Cluster-ID", membership.IDString(s.cfg.ClusterID))
	idStr := strings.TrimPrefix(r.URL.Path, PathPromote)
	id, err := strconv.ParseUint(idStr, 10, 64)
	if err != nil {
		http.Error(w, fmt.Sprintf("member %s not found in cluster", idStr), http.StatusNotFound)
		return
	}
	members, err := s.promoteCounted(r.Context(), id)
	if err != nil {
		err = TranslateError(err)
		s.lg.Warn("failed to promote a member", zap.String("member-id", membership.IDString(id)), zap.Error(err))
		switch {
		case errors.Is(err, ErrIDNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, ErrMemberNotLearner), errors.Is(err, ErrLearnerNotReady):
			http.Error(w, err.Error(), http.StatusPreconditionFailed)
		case errors.Is(err, ErrTimeout):
			http.Error(w, err.Error(), http.StatusRequestTimeout)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	b, err := json.Marshal(fromPB(members))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// forwardPromote asks the leader to promote id, retrying (a leader may be being
// elected) until ctx or the request timeout ends, or the leader gives a final answer.
func (s *Server) forwardPromote(ctx context.Context, id uint64) ([]*pb.Member, error) {
	cctx, cancel := context.WithTimeout(ctx, s.reqTimeout())
	defer cancel()
	client := s.cfg.PeerClient
	if client == nil {
		client = http.DefaultClient
	}
	for cctx.Err() == nil {
		var urls []string
		if lead := s.node.Leader(); lead != 0 && lead != s.cfg.MemberID {
			if cl, err := s.app.Members(); err == nil && cl.Member(lead) != nil {
				urls = cl.Member(lead).PeerURLs
			}
		}
		for _, u := range urls {
			members, err := promoteHTTP(cctx, client, u, id)
			if err == nil {
				return members, nil
			}
			if errors.Is(err, ErrLearnerNotReady) || errors.Is(err, ErrIDNotFound) || errors.Is(err, ErrMemberNotLearner) {
				return nil, err
			}
			s.lg.Warn("forwarding member promote to the leader failed", zap.String("url", u), zap.Error(err))
		}
		select {
		case <-cctx.Done():
		case <-s.stopping:
			return nil, ErrStopped
		case <-time.After(100 * time.Millisecond):
		}
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return nil, ErrTimeout
	}
	return nil, ErrCanceled
}

// promoteHTTP is one forwarded promotion to the member at peer URL u.
func promoteHTTP(ctx context.Context, client *http.Client, u string, id uint64) ([]*pb.Member, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+PathPromote+strconv.FormatUint(id, 10), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusRequestTimeout:
		return nil, ErrTimeout
	case http.StatusPreconditionFailed:
		if strings.Contains(string(b), ErrLearnerNotReady.Error()) {
			return nil, ErrLearnerNotReady
		}
		if strings.Contains(string(b), ErrMemberNotLearner.Error()) {
			return nil, ErrMemberNotLearner
		}
		return nil, fmt.Errorf("member promote: unknown error(%s)", b)
	case http.StatusNotFound:
		return nil, ErrIDNotFound
	default:
		return nil, fmt.Errorf("member promote: unknown error(%s)", b)
	}
	ms, err := membership.UnmarshalMembers(b)
	if err != nil {
		return nil, err
	}
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = m.ToPB()
	}
	return out, nil
}

// fromPB is the member list as etcd's peer endpoints encode it.
func fromPB(ms []*pb.Member) []*membership.Member {
	out := make([]*membership.Member, len(ms))
	for i, m := range ms {
		out[i] = &membership.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
	}
	return out
}
