package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/membership"
)

// joinTimeout bounds each GET /members of a joining member, as etcd's
// GetClusterFromRemotePeers.
const joinTimeout = 10 * time.Second

// clusterFromPeers is how a member started with --initial-cluster-state=existing (and
// an empty data dir) learns the cluster it joins, as etcd's
// bootstrapExistingClusterNoWAL: it asks the peer URLs of the other members of
// --initial-cluster for GET /members (cluster ID in X-Etcd-Cluster-ID), matches every
// member the cluster lists to a member of --initial-cluster by peer URLs, and returns
// the running cluster (its ID and member IDs) and this member's ID in it.
func clusterFromPeers(cfg *config.Config, client *http.Client, lg *zap.Logger) (*membership.Cluster, uint64, error) {
	ic, err := membership.ParseInitialCluster(cfg.InitialCluster)
	if err != nil {
		return nil, 0, err
	}
	if err := membership.VerifyJoinExisting(cfg.Name, ic); err != nil {
		return nil, 0, err
	}
	var urls []string
	for name, us := range ic {
		if name != cfg.Name {
			urls = append(urls, us...)
		}
	}
	sort.Strings(urls)
	existing, err := getClusterFromPeers(urls, client, lg)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot fetch cluster info from peer urls: %w", err)
	}
	if len(existing.Members) != len(ic) {
		return nil, 0, fmt.Errorf("error validating peerURLs %v: member count is unequal", existing.MemberIDs())
	}
	selfURLs := strings.Join(ic[cfg.Name], ",")
	var selfID uint64
	for _, m := range existing.Members {
		matched := false
		for _, us := range ic {
			if strings.Join(us, ",") == strings.Join(m.PeerURLs, ",") {
				matched = true
				break
			}
		}
		if !matched {
			return nil, 0, fmt.Errorf("error validating peerURLs %v: PeerURLs: no match found for existing member (%s, %v)",
				existing.MemberIDs(), membership.IDString(m.ID), m.PeerURLs)
		}
		if strings.Join(m.PeerURLs, ",") == selfURLs {
			selfID = m.ID
		}
	}
	if selfID == 0 {
		return nil, 0, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", cfg.Name)
	}
	return existing, selfID, nil
}

// getClusterFromPeers is etcd's getClusterFromRemotePeers: the first peer that answers
// GET <url>/members with a member list and a cluster ID gives the cluster.
func getClusterFromPeers(urls []string, client *http.Client, lg *zap.Logger) (*membership.Cluster, error) {
	cc := &http.Client{
		Transport:     client.Transport,
		Timeout:       joinTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, u := range urls {
		addr := u + "/members"
		resp, err := cc.Get(addr)
		if err != nil {
			lg.Warn("failed to get cluster response", zap.String("address", addr), zap.Error(err))
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lg.Warn("failed to read body of cluster response", zap.String("address", addr), zap.Error(err))
			continue
		}
		ms, err := membership.UnmarshalMembers(b)
		if err != nil {
			lg.Warn("failed to unmarshal cluster response", zap.String("address", addr), zap.Error(err))
			continue
		}
		hdr := resp.Header.Get("X-Etcd-Cluster-ID")
		id, err := strconv.ParseUint(hdr, 16, 64)
		if err != nil {
			lg.Warn("failed to parse cluster ID", zap.String("address", addr), zap.String("header", hdr), zap.Error(err))
			continue
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("failed to get raft cluster member(s) from the given URLs")
		}
		for _, m := range ms {
			sort.Strings(m.PeerURLs)
		}
		return membership.NewClusterFromMembers(id, ms), nil
	}
	return nil, fmt.Errorf("could not retrieve cluster information from the given URLs")
}
