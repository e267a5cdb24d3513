package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/clientport"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/gateway"
	"github.com/metastore/metastore/internal/grpcapi"
)

// servingOptions fills the gRPC limits of opts from cfg (etcd's flags, our rate limit).
func servingOptions(cfg *config.Config, opts grpcapi.Options) grpcapi.Options {
	opts.MaxConcurrentStreams = cfg.MaxConcurrentStreams
	opts.KeepAliveMinTime = etcdZero(cfg.GRPCKeepAliveMinTime)
	opts.KeepAliveInterval = etcdZero(cfg.GRPCKeepAliveInterval)
	opts.KeepAliveTimeout = etcdZero(cfg.GRPCKeepAliveTimeout)
	opts.WarningUnaryRequestDuration = cfg.WarningUnaryRequestDuration
	opts.RequestRate = cfg.ClientRequestRate
	opts.RequestBurst = cfg.ClientRequestBurst
	return opts
}

// etcdZero maps etcd's 0 ("left to gRPC") onto grpcapi's negative (its 0 is "default").
func etcdZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// clientHandler is the client port's HTTP handler: mux, with the JSON gateway under
// /v3/ when --enable-grpc-gateway (served by gs through an in-process connection,
// closed by the returned function, which the caller calls before stopping gs), behind
// etcd's access controller (CORS headers, /v3beta/).
func clientHandler(cfg *config.Config, gs *grpc.Server, mux *http.ServeMux, lg *zap.Logger) (http.Handler, func(), error) {
	closeFn := func() {}
	if cfg.EnableGRPCGateway {
		conn, err := gateway.InProcess(gs)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		gw, err := gateway.New(ctx, conn, lg)
		if err != nil {
			cancel()
			_ = conn.Close()
			return nil, nil, err
		}
		mux.Handle(gateway.PathPrefix, gw)
		closeFn = func() { cancel(); _ = conn.Close() }
	}
	return grpcapi.AccessController(mux), closeFn, nil
}

// limitClients applies --max-client-connections to each client listener.
func limitClients(cfg *config.Config, ls []clientListener, reg prometheus.Registerer, lg *zap.Logger) {
	if cfg.MaxClientConnections <= 0 {
		return
	}
	refused := grpcapi.ConnectionsRefused(reg, lg)
	for i := range ls {
		ls[i].l = clientport.LimitListener(ls[i].l, cfg.MaxClientConnections, refused.Inc)
	}
}
