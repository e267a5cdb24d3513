package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/storage"
)

// The cluster version, as etcd decides it (etcdserver/version/monitor.go):
//
//  1. Only the leader decides. It checks right after it is elected and then every
//     monitorVersionInterval (which also catches members added or upgraded).
//  2. It asks every member for its server version: its own is apply.LocalVersion; the
//     others answer GET <peer URL>/version on the peer port (transport serves it).
//  3. With no cluster version yet, it proposes the lowest member version, or
//     apply.MinClusterVersion (3.0) if a member did not answer. Afterwards it proposes
//     only a raise, to the lowest member version, once every member answered and the
//     major version stays the same. A member that did not answer never lets the
//     version rise: it may run an older build.
//  4. The version goes through Raft as a ClusterVersionSetRequest; apply stores it and
//     gates request types by it (apply/version.go). propose refuses, before proposing,
//     a request that apply would refuse (checkCapable).
//
// Downgrades (etcd's DowngradeInfoSet) are not implemented: the version never falls.

// monitorVersionInterval is how often the leader re-decides, etcd's
// monitorVersionInterval (rafthttp.ConnWriteTimeout - 1s).
const monitorVersionInterval = 4 * time.Second

// peerVersionTimeout bounds one GET /version to a peer.
const peerVersionTimeout = 2 * time.Second

// ClusterVersion is the cluster version this member has applied ("3.7.0"), or "" if
// the leader has not decided one yet.
func (s *Server) ClusterVersion() string {
	v := s.app.ClusterVersion()
	if v.IsZero() {
		return ""
	}
	return v.String()
}

// checkCapable refuses a request this build does not implement (apply.ErrUnsupported)
// or that the applied cluster version does not allow yet (apply.ErrNotCapable), before
// it is proposed. Apply checks again at the entry, against the version there.
func (s *Server) checkCapable(r *pb.InternalRaftRequest) error {
	return apply.CheckCapable(r, s.app.ClusterVersion())
}

// monitorVersion runs the leader's side of the cluster version (see the top of the file).
func (s *Server) monitorVersion() {
	defer s.wg.Done()
	tick := time.NewTicker(monitorVersionInterval)
	defer tick.Stop()
	for {
		changed := s.node.LeaderChanged()
		select {
		case <-changed:
		case <-tick.C:
		case <-s.stopping:
			return
		}
		if s.node.Leader() != s.cfg.MemberID {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
		s.maybeUpdateClusterVersion(ctx)
		cancel()
	}
}

// maybeUpdateClusterVersion proposes the version decideClusterVersion picks, if any.
func (s *Server) maybeUpdateClusterVersion(ctx context.Context) {
	v, ok := decideClusterVersion(s.app.ClusterVersion(), s.membersMinimalVersion(ctx))
	if !ok {
		return
	}
	s.lg.Info("setting cluster version", zap.String("cluster-version", v.String()))
	_, err := s.proposeFor(ctx, &pb.InternalRaftRequest{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: v.String()}})
	if err != nil {
		s.lg.Warn("failed to set the cluster version", zap.String("cluster-version", v.String()), zap.Error(err))
	}
}

// decideClusterVersion returns the version to propose given the applied one (zero: none)
// and the lowest member version (zero: some member's is unknown), and false to leave it.
func decideClusterVersion(applied, lowest apply.Version) (apply.Version, bool) {
	if applied.IsZero() {
		if lowest.IsZero() {
			return apply.MinClusterVersion, true
		}
		return lowest, true
	}
	if lowest.IsZero() || lowest.Major != applied.Major || !applied.Less(lowest) {
		return apply.Version{}, false
	}
	return lowest, true
}

// membersMinimalVersion is the lowest server version among the members, the zero
// Version if any member's is unknown (not reachable, no member list yet).
func (s *Server) membersMinimalVersion(ctx context.Context) apply.Version {
	cl, err := s.app.Members()
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.lg.Warn("reading the member list for the cluster version", zap.Error(err))
		}
		return apply.Version{}
	}
	lowest := apply.LocalVersion
	for _, id := range cl.MemberIDs() {
		v := apply.LocalVersion
		if id != s.cfg.MemberID {
			m := cl.Member(id)
			if m == nil {
				return apply.Version{}
			}
			if v, err = s.peerVersion(ctx, m.PeerURLs); err != nil {
				s.lg.Debug("member version unknown", zap.Uint64("member", id), zap.Error(err))
				return apply.Version{}
			}
			if apply.LocalVersion.Less(v) {
				s.lg.Warn("leader found a higher-versioned member", zap.Uint64("member", id), zap.Stringer("member-version", v))
			}
		}
		if v.Less(lowest) {
			lowest = v
		}
	}
	return lowest
}

// peerVersion asks a member for its server version on the first of its peer URLs that
// answers.
func (s *Server) peerVersion(ctx context.Context, peerURLs []string) (apply.Version, error) {
	client := s.cfg.PeerClient
	if client == nil {
		client = http.DefaultClient
	}
	err := errors.New("no peer URL")
	for _, u := range peerURLs {
		var v apply.Version
		if v, err = fetchVersion(ctx, client, u); err == nil {
			return v, nil
		}
	}
	return apply.Version{}, err
}

// fetchVersion reads GET <peerURL>/version: {"etcdserver": "3.7.3", ...}.
func fetchVersion(ctx context.Context, client *http.Client, peerURL string) (apply.Version, error) {
	ctx, cancel := context.WithTimeout(ctx, peerVersionTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peerURL, "/")+"/version", nil)
	if err != nil {
		return apply.Version{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return apply.Version{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apply.Version{}, fmt.Errorf("GET %s/version: %s", peerURL, resp.Status)
	}
	var body struct {
		Server string `json:"etcdserver"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil {
		return apply.Version{}, fmt.Errorf("GET %s/version: %w", peerURL, err)
	}
	return apply.ParseVersion(body.Server)
}
