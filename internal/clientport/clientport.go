// Package clientport serves etcd's client port: it tells the connections arriving on
// one listener apart and hands each to the gRPC server or the HTTP handler it is given,
// as etcd v3.7.3 serves a client address (embed/serve.go):
//
//   - plaintext (http://, unix://): the first bytes of a connection tell HTTP/2 (gRPC,
//     including h2c) from HTTP/1.x; HTTP/2 goes to grpc.Server.Serve (grpc-go's own
//     transport, not its ServeHTTP), HTTP/1.x to the handler;
//   - TLS (https://, unixs://): every connection is a TLS handshake with the given
//     certificate (a client certificate required when the TLS settings have a trusted CA
//     or ClientCertAuth; the CRL checked), then one HTTP server speaks HTTP/1.1 and
//     HTTP/2 (ALPN "h2"): HTTP/2 requests with Content-Type application/grpc go to
//     grpc.Server.ServeHTTP, everything else to the handler;
//   - both on one address: a connection starting with a TLS handshake record takes the
//     TLS path, any other the plaintext one.
//
// It owns this multiplexing and nothing else: the TLS settings and the listeners come
// from tlsconf, the gRPC services and HTTP endpoints from grpcapi (which it does not
// import). It never stops the gRPC server it is given.
package clientport

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/tlsconf"
)

// sniffTimeout bounds how long a new connection may take to send the bytes that tell
// TLS from plaintext and HTTP/1 from HTTP/2; a silent connection is closed after it.
// Shutdown waits for connections still being sniffed, so this also bounds how long
// Serve takes to return after its listener is closed.
var sniffTimeout = 5 * time.Second

// Serve serves g and httpHandler on l, a listener of one client address, as the
// package doc describes: plaintext says whether a plaintext URL names the address,
// info holds the TLS settings when a TLS URL does (nil or Empty otherwise).
//
// It blocks until l is closed (or, on a plaintext-only address, g is stopped: g.Stop and
// g.GracefulStop close l through the mux), then closes its HTTP servers and returns;
// it returns nil on such a shutdown and the error otherwise. With neither plaintext
// nor a certificate it returns tlsconf.ErrNoCertificate at once.
func Serve(l net.Listener, plaintext bool, info *transport.TLSInfo, g *grpc.Server, httpHandler http.Handler) error {
	if info == nil || info.Empty() {
		if !plaintext {
			return tlsconf.ErrNoCertificate
		}
		return servePlain(l, g, httpHandler)
	}
	if _, err := info.ServerConfig(); err != nil {
		return err
	}
	if !plaintext {
		return serveTLS(l, info, g, httpHandler)
	}
	m := cmux.New(l)
	m.SetReadTimeout(sniffTimeout)
	tlsL := m.Match(cmux.TLS())
	plainL := m.Match(cmux.Any())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = serveTLS(tlsL, info, g, httpHandler) }()
	go func() { defer wg.Done(); _ = servePlain(plainL, g, httpHandler) }()
	err := m.Serve()
	_ = l.Close()
	tlsL.Close()
	plainL.Close()
	wg.Wait()
	return closedIsNil(err)
}

// servePlain is the plaintext path of Serve: HTTP/2 to g.Serve, HTTP/1.x to
// httpHandler, other connections closed.
func servePlain(l net.Listener, g *grpc.Server, httpHandler http.Handler) error {
	m := cmux.New(l)
	m.SetReadTimeout(sniffTimeout)
	httpL := m.Match(cmux.HTTP1())
	grpcL := m.Match(cmux.HTTP2())
	hs := &http.Server{Handler: httpHandler, ReadHeaderTimeout: 5 * time.Minute}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(grpcL) }()
	go func() { defer wg.Done(); _ = hs.Serve(httpL) }()

	err := m.Serve()
	_ = hs.Close()
	_ = l.Close()
	wg.Wait()
	return closedIsNil(err)
}

// serveTLS is the TLS path of Serve; l yields raw connections.
func serveTLS(l net.Listener, info *transport.TLSInfo, g *grpc.Server, httpHandler http.Handler) error {
	cfg, err := info.ServerConfig()
	if err != nil {
		return err
	}
	tlsl, err := transport.NewTLSListener(l, info)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           grpcOrHTTP(g, httpHandler),
		TLSConfig:         cfg, // its NextProtos ("h2") turn HTTP/2 on for the TLS connections
		ReadHeaderTimeout: 5 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0), // handshake failures are the client's business
	}
	err = hs.Serve(tlsl)
	_ = hs.Close()
	_ = tlsl.Close()
	return closedIsNil(err)
}

// grpcOrHTTP sends gRPC requests (HTTP/2, Content-Type application/grpc*) to g and
// the rest to h, as etcd's grpcHandlerFunc.
func grpcOrHTTP(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.Contains(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// closedIsNil turns the errors of a listener or server closed on purpose into nil.
func closedIsNil(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) ||
		errors.Is(err, cmux.ErrListenerClosed) || errors.Is(err, cmux.ErrServerClosed) ||
		transport.IsClosedConnError(err) {
		return nil
	}
	return err
}
