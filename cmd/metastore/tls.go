package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/clientport"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/tlsconf"
)

// peerTLS returns the peer port's TLS settings and the client TLS configuration the
// transport dials peers with (tlsconf.PeerInfo, tlsconf.PeerClientConfig).
func peerTLS(cfg *config.Config, lg *zap.Logger) (*transport.TLSInfo, *tls.Config, error) {
	info, err := tlsconf.PeerInfo(cfg, lg)
	if err != nil {
		return nil, nil, fmt.Errorf("peer TLS: %w", err)
	}
	cc, err := tlsconf.PeerClientConfig(info)
	if err != nil {
		return nil, nil, fmt.Errorf("peer TLS: %w", err)
	}
	return info, cc, nil
}

// clientListener is one listening address of the client port.
type clientListener struct {
	l    net.Listener
	addr *tlsconf.ClientAddr
}

// listenClients opens one listener per client address (URLs sharing an address share
// it, as in etcd) and returns the client TLS settings they are served with.
func listenClients(cfg *config.Config, lg *zap.Logger) ([]clientListener, *transport.TLSInfo, error) {
	info, err := tlsconf.ClientInfo(cfg, lg)
	if err != nil {
		return nil, nil, fmt.Errorf("client TLS: %w", err)
	}
	var out []clientListener
	for _, a := range tlsconf.ClientAddrs(cfg.ListenClientURLs) {
		l, err := tlsconf.ListenClient(a.URL)
		if err != nil {
			for _, c := range out {
				_ = c.l.Close()
			}
			return nil, nil, fmt.Errorf("listen on client URL %s: %w", a.URL.String(), err)
		}
		out = append(out, clientListener{l: l, addr: a})
	}
	return out, info, nil
}

// serve serves g and mux on c until its listener is closed.
func (c clientListener) serve(info *transport.TLSInfo, g *grpc.Server, mux http.Handler) error {
	if !c.addr.TLS {
		info = nil
	}
	return clientport.Serve(c.l, c.addr.Plaintext, info, g, mux)
}

// logServing logs, once the member is ready, how c is served, with etcd's messages.
func (c clientListener) logServing(lg *zap.Logger) {
	if c.addr.Plaintext {
		lg.Info("serving client traffic insecurely; this is strongly discouraged!",
			zap.String("traffic", "grpc+http"), zap.String("address", c.l.Addr().String()))
	}
	if c.addr.TLS {
		lg.Info("serving client traffic securely",
			zap.String("traffic", "grpc+http"), zap.String("address", c.l.Addr().String()))
	}
}
