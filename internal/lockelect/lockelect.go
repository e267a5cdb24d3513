// Package lockelect serves etcd's v3lock (Lock, Unlock) and v3election (Campaign,
// Proclaim, Leader, Observe, Resign) gRPC services. As etcd's server/etcdserver/api/
// v3lock and v3election, they are thin wrappers over clientv3/concurrency, driven by a
// clientv3 client of this very member (cmd gives it one connected in process): a lock
// or a campaign is a key under the name, attached to the caller's lease, and waiting is
// watching the keys before it.
//
// It owns only the translation between those services and concurrency; it must not
// reach the server or the state machine but through the client it is given.
package lockelect

//go:generate ./generate.sh

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	epb "github.com/metastore/metastore/internal/lockelect/v3electionpb"
	lpb "github.com/metastore/metastore/internal/lockelect/v3lockpb"
)

// ErrMissingLeaderKey answers a Proclaim or Resign without a leader (etcd's message).
var ErrMissingLeaderKey = errors.New(`"leader" field must be provided`)

// Register adds both services to gs, served through c.
func Register(gs *grpc.Server, c *clientv3.Client) {
	lpb.RegisterLockServer(gs, &lockServer{c: c})
	epb.RegisterElectionServer(gs, &electionServer{c: c})
}

// session is a concurrency session on lease (-1: none, for reads), orphaned so that
// nothing keeps the lease alive or revokes it here: the caller owns it.
func session(ctx context.Context, c *clientv3.Client, lease int64) (*concurrency.Session, error) {
	s, err := concurrency.NewSession(c, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	s.Orphan()
	return s, nil
}

// credentialKeys are the metadata keys that carry a caller's auth token (etcd's "token",
// and "authorization" as its gateway sends it).
var credentialKeys = []string{"token", "authorization"}

// asCaller makes the calls the services make through their client carry the credentials
// the caller sent, so that with auth enabled they are checked as the caller's own (as
// etcd's in-process adapters keep the caller's context). A client-certificate identity
// does not cross the in-process connection.
func asCaller(ctx context.Context) context.Context {
	in, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	var kv []string
	for _, k := range credentialKeys {
		for _, v := range in.Get(k) {
			kv = append(kv, k, v)
		}
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

type lockServer struct {
	lpb.UnimplementedLockServer
	c *clientv3.Client
}

// Lock waits until the caller holds the lock name with its lease and returns the key
// that holds it (its deletion, by Unlock or the lease's end, releases the lock).
func (s *lockServer) Lock(ctx context.Context, r *lpb.LockRequest) (*lpb.LockResponse, error) {
	ctx = asCaller(ctx)
	ss, err := session(ctx, s.c, r.Lease)
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(ss, string(r.Name))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &lpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

// Unlock deletes the key Lock returned.
func (s *lockServer) Unlock(ctx context.Context, r *lpb.UnlockRequest) (*lpb.UnlockResponse, error) {
	ctx = asCaller(ctx)
	resp, err := s.c.Delete(ctx, string(r.Key))
	if err != nil {
		return nil, err
	}
	return &lpb.UnlockResponse{Header: resp.Header}, nil
}

type electionServer struct {
	epb.UnimplementedElectionServer
	c *clientv3.Client
}

func (s *electionServer) Campaign(ctx context.Context, r *epb.CampaignRequest) (*epb.CampaignResponse, error) {
	ctx = asCaller(ctx)
	ss, err := session(ctx, s.c, r.Lease)
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(ss, string(r.Name))
	if err := e.Campaign(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &epb.CampaignResponse{
		Header: e.Header(),
		Leader: &epb.LeaderKey{Name: r.Name, Key: []byte(e.Key()), Rev: e.Rev(), Lease: int64(ss.Lease())},
	}, nil
}

func (s *electionServer) Proclaim(ctx context.Context, r *epb.ProclaimRequest) (*epb.ProclaimResponse, error) {
	ctx = asCaller(ctx)
	if r.Leader == nil {
		return nil, ErrMissingLeaderKey
	}
	ss, err := session(ctx, s.c, r.Leader.Lease)
	if err != nil {
		return nil, err
	}
	e := concurrency.ResumeElection(ss, string(r.Leader.Name), string(r.Leader.Key), r.Leader.Rev)
	if err := e.Proclaim(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &epb.ProclaimResponse{Header: e.Header()}, nil
}

func (s *electionServer) Leader(ctx context.Context, r *epb.LeaderRequest) (*epb.LeaderResponse, error) {
	ctx = asCaller(ctx)
	ss, err := session(ctx, s.c, -1)
	if err != nil {
		return nil, err
	}
	l, err := concurrency.NewElection(ss, string(r.Name)).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &epb.LeaderResponse{Header: l.Header, Kv: l.Kvs[0]}, nil
}

// Observe streams the election's leader value each time it changes.
func (s *electionServer) Observe(r *epb.LeaderRequest, stream epb.Election_ObserveServer) error {
	ctx := asCaller(stream.Context())
	ss, err := session(ctx, s.c, -1)
	if err != nil {
		return err
	}
	ch := concurrency.NewElection(ss, string(r.Name)).Observe(ctx)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case resp, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

func (s *electionServer) Resign(ctx context.Context, r *epb.ResignRequest) (*epb.ResignResponse, error) {
	ctx = asCaller(ctx)
	if r.Leader == nil {
		return nil, ErrMissingLeaderKey
	}
	ss, err := session(ctx, s.c, r.Leader.Lease)
	if err != nil {
		return nil, err
	}
	e := concurrency.ResumeElection(ss, string(r.Leader.Name), string(r.Leader.Key), r.Leader.Rev)
	if err := e.Resign(ctx); err != nil {
		return nil, err
	}
	return &epb.ResignResponse{Header: e.Header()}, nil
}
