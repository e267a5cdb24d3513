package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/lease"
)

// Lease requests forwarded to the leader over the peer port, as etcd's leasehttp does:
//
//	POST /leases           LeaseKeepAliveRequest -> LeaseKeepAliveResponse (renew)
//	POST /leases/internal  LeaseInternalRequest{LeaseTimeToLiveRequest} -> LeaseInternalResponse
//
// bodies in protobuf (application/protobuf); an unknown lease answers 404 with etcd's
// message; a member that is not the (promoted) leader answers 503, and the asking
// member retries, having perhaps learned of another leader meanwhile.
const (
	PathLeases        = "/leases"
	PathLeaseInternal = "/leases/internal"

	maxLeaseHTTPBody = 64 << 10
	// maxLeaseHTTPAnswer bounds the leader's answer, which for a time-to-live with keys
	// holds every attached key (etcd sets no bound at all).
	maxLeaseHTTPAnswer = 256 << 20
)

// errLeaderUnreachable: the leader known did not answer; try again.
var errLeaderUnreachable = errors.New("etcdserver: leader unreachable")

// errBadLeaderAnswer: the leader answered something that does not decode; asking again
// would get the same.
var errBadLeaderAnswer = errors.New("etcdserver: the leader's lease answer does not decode")

// LeaseHandler serves PathLeases and PathLeaseInternal; cmd mounts it on the peer port.
// It also serves PathLeaseBatch (leasefwd.go).
func (s *Server) LeaseHandler() http.Handler {
	return http.HandlerFunc(s.serveLease)
}

func (s *Server) serveLease(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLeaseHTTPBody))
	if err != nil {
		http.Error(w, "error reading body", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.reqTimeout())
	defer cancel()
	var out []byte
	switch r.URL.Path {
	case PathLeases:
		var req pb.LeaseKeepAliveRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, "error unmarshalling request", http.StatusBadRequest)
			return
		}
		if !s.isLeader() {
			http.Error(w, ErrNotPrimary.Error(), http.StatusServiceUnavailable)
			return
		}
		ttl, err := s.renewLocal(ctx, req.ID)
		if err != nil {
			leaseHTTPError(w, err)
			return
		}
		out, err = proto.Marshal(&pb.LeaseKeepAliveResponse{ID: req.ID, TTL: ttl})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	case PathLeaseBatch:
		s.serveLeaseBatch(ctx, w, body)
		return
	case PathLeaseInternal:
		inner, err := unwrapField1(body)
		var req pb.LeaseTimeToLiveRequest
		if err == nil {
			err = proto.Unmarshal(inner, &req)
		}
		if err != nil {
			http.Error(w, "error unmarshalling request", http.StatusBadRequest)
			return
		}
		if !s.isLeader() {
			http.Error(w, ErrNotPrimary.Error(), http.StatusServiceUnavailable)
			return
		}
		resp, err := s.timeToLiveLocal(ctx, &req)
		if err != nil {
			leaseHTTPError(w, err)
			return
		}
		b, err := proto.Marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out = wrapField1(b)
	default:
		http.Error(w, fmt.Sprintf("unknown request path %q", r.URL.Path), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/protobuf")
	_, _ = w.Write(out)
}

func leaseHTTPError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, lease.ErrLeaseNotFound):
		http.Error(w, lease.ErrLeaseNotFound.Error(), http.StatusNotFound)
	case errors.Is(err, ErrNotPrimary):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// wrapField1 and unwrapField1 are etcd's LeaseInternalRequest/Response: one message
// field, number 1.
func wrapField1(b []byte) []byte {
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(out, b)
}

func unwrapField1(b []byte) ([]byte, error) {
	var inner []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			inner, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		b = b[m:]
	}
	return inner, nil
}

// postLeader POSTs body to path on the leader and returns the answer's body.
func (s *Server) postLeader(ctx context.Context, path string, body []byte) ([]byte, error) {
	status, b, err := s.postLeaderStatus(ctx, path, body)
	if err != nil {
		return nil, err
	}
	switch status {
	case http.StatusOK:
		return b, nil
	case http.StatusNotFound:
		return nil, lease.ErrLeaseNotFound
	case http.StatusServiceUnavailable:
		return nil, ErrNotPrimary
	default:
		return nil, fmt.Errorf("%w: status %d: %s", errLeaderUnreachable, status, strings.TrimSpace(string(b)))
	}
}

// postLeaderStatus POSTs body to path on the leader (trying each of its peer URLs until
// one answers) and returns the answer's status and body. When none answers, the cached
// peer URLs are dropped.
func (s *Server) postLeaderStatus(ctx context.Context, path string, body []byte) (int, []byte, error) {
	urls, err := s.leaderPeerURLs()
	if err != nil {
		return 0, nil, err
	}
	client := s.cfg.PeerClient
	if client == nil {
		client = http.DefaultClient
	}
	for _, u := range urls {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(u, "/")+path, bytes.NewReader(body))
		if rerr != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/protobuf")
		resp, derr := client.Do(req)
		if derr != nil {
			if ctx.Err() != nil {
				return 0, nil, s.parseProposeCtxErr(ctx.Err(), time.Now())
			}
			continue
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxLeaseHTTPAnswer))
		resp.Body.Close()
		if rerr != nil {
			continue
		}
		return resp.StatusCode, b, nil
	}
	s.invalidateLeaderURLs()
	return 0, nil, errLeaderUnreachable
}

// renewRemoteOne renews lease id on the leader alone (etcd's POST /leases).
func (s *Server) renewRemoteOne(ctx context.Context, id int64) (int64, error) {
	body, err := proto.Marshal(&pb.LeaseKeepAliveRequest{ID: id})
	if err != nil {
		return -1, err
	}
	b, err := s.postLeader(ctx, PathLeases, body)
	if err != nil {
		return -1, err
	}
	var resp pb.LeaseKeepAliveResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return -1, fmt.Errorf("%w: %v", errBadLeaderAnswer, err)
	}
	return resp.TTL, nil
}

// timeToLiveRemote asks the leader for lease r.ID's time to live.
func (s *Server) timeToLiveRemote(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	body, err := proto.Marshal(&pb.LeaseTimeToLiveRequest{ID: r.GetID(), Keys: r.GetKeys()})
	if err != nil {
		return nil, err
	}
	b, err := s.postLeader(ctx, PathLeaseInternal, wrapField1(body))
	if err != nil {
		return nil, err
	}
	inner, err := unwrapField1(b)
	var resp pb.LeaseTimeToLiveResponse
	if err == nil {
		err = proto.Unmarshal(inner, &resp)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadLeaderAnswer, err)
	}
	if resp.Header == nil {
		resp.Header = &pb.ResponseHeader{}
	}
	return &resp, nil
}
