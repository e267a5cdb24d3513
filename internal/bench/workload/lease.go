package workload

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/bench/report"
)

// LeaseGrant sends cfg.Total LeaseGrant requests (TTL 3600 s, server-chosen IDs) and
// revokes nothing: the leases outlive the run, as a grant burst's would. It measures
// the grant path alone (one Raft proposal per grant, as etcd).
func LeaseGrant(ctx context.Context, e *Env) (report.Output, error) {
	recs := newRecorders("lease-grant")
	e.run(ctx, recs, func(int) Op {
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Grant(ctx, 3600)
			return err
		}}
	})
	return report.Output{Workload: "lease-grant", Settings: e.Cfg.settings(), Results: summaries(recs)}, nil
}
