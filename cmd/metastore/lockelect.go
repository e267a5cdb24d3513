package main

import (
	"context"
	"net"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/metastore/metastore/internal/lockelect"
)

// serveLockElection registers etcd's v3lock and v3election services on gs, served by a
// clientv3 client of gs itself over an in-memory connection (as etcd's v3client): no
// port, no TLS, and it works whatever the client URLs and their security. gs must not
// be serving yet. The caller closes the client before stopping gs (its streams would
// hold up a graceful stop).
func serveLockElection(gs *grpc.Server, lg *zap.Logger) (*clientv3.Client, error) {
	l := bufconn.Listen(1 << 20)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"in-process:1"}, // any address: the dialer below ignores it
		Logger:    lg.Named("in-process-client"),
		DialOptions: []grpc.DialOption{
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		},
	})
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	lockelect.Register(gs, cli)
	go func() { _ = gs.Serve(l) }() // ends when gs stops
	return cli, nil
}
