package tlsconf

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/grpcapi"
)

// ErrNoCertificate is returned for a secure URL when its side has no certificate
// (config.Validate normally refuses such a configuration first).
var ErrNoCertificate = errors.New("tlsconf: a TLS URL needs a certificate (--cert-file/--key-file, --peer-cert-file/--peer-key-file, or auto TLS)")

// ListenPeer listens on peer URL u. For http:// and unix:// it is a plain listener. For
// https:// and unixs:// the listener yields *tls.Conn whose handshake is done and,
// when the peer presented a client certificate, whose certificate is not revoked by
// info's CRL and (on https, unless info.SkipClientSANVerify) names the address the
// peer connects from, as etcd's peer listener. The server certificate is loaded at
// once, so a bad certificate fails here rather than at the first handshake.
func ListenPeer(u url.URL, info *transport.TLSInfo) (net.Listener, error) {
	switch {
	case !Secure(u):
		return listen(u)
	case info == nil || info.Empty():
		return nil, ErrNoCertificate
	}
	if _, err := info.ServerConfig(); err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		return transport.NewListenerWithOpts(u.Host, u.Scheme, transport.WithTLSInfo(info))
	}
	l, err := listen(u)
	if err != nil {
		return nil, err
	}
	return transport.NewTLSListener(l, info) // a unix socket has no address to match a SAN against
}

// ListenClient listens on client URL u, without TLS: ServeClient adds it.
func ListenClient(u url.URL) (net.Listener, error) { return listen(u) }

// listen opens a plain listener for http(s)://host:port or unix(s)://path.
func listen(u url.URL) (net.Listener, error) {
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		path := u.Host + u.Path
		_ = os.Remove(path)
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", u.Host)
}

// ServeClient serves one client listener as etcd serves a client address given as
// plaintext URL (http://, unix://), TLS URL (https://, unixs://), or both:
//
//   - plaintext only: grpcapi.ServeClient;
//   - TLS only: every connection is a TLS handshake (info's certificate; a client
//     certificate required when info has a trusted CA or ClientCertAuth; CRL checked),
//     then one HTTP server speaks HTTP/1.1 and HTTP/2 (ALPN "h2"): HTTP/2 requests whose
//     Content-Type is application/grpc go to g (g.ServeHTTP), all else to httpHandler;
//   - both: a connection starting with a TLS handshake record takes the TLS path, any
//     other the plaintext one.
//
// It blocks until l is closed (or g is stopped, in plaintext mode) and returns nil
// then. It does not stop g.
func ServeClient(l net.Listener, plaintext bool, info *transport.TLSInfo, g *grpc.Server, httpHandler http.Handler) error {
	if info == nil || info.Empty() {
		if !plaintext {
			return ErrNoCertificate
		}
		return grpcapi.ServeClient(l, g, httpHandler)
	}
	if _, err := info.ServerConfig(); err != nil {
		return err
	}
	if !plaintext {
		return serveTLS(l, info, g, httpHandler)
	}
	m := cmux.New(l)
	m.SetReadTimeout(5 * time.Second)
	tlsL := m.Match(cmux.TLS())
	plainL := m.Match(cmux.Any())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = serveTLS(tlsL, info, g, httpHandler) }()
	go func() { defer wg.Done(); _ = grpcapi.ServeClient(plainL, g, httpHandler) }()
	err := m.Serve()
	_ = l.Close()
	tlsL.Close()
	plainL.Close()
	wg.Wait()
	return closedIsNil(err)
}

// serveTLS is the TLS path of ServeClient; l yields raw connections.
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

func closedIsNil(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) ||
		errors.Is(err, cmux.ErrListenerClosed) || errors.Is(err, cmux.ErrServerClosed) ||
		transport.IsClosedConnError(err) {
		return nil
	}
	return err
}

// ClientAddr is one address of the client port and how it is served: etcd serves the
// URLs that share an address (http://h:p and https://h:p) on one listener.
type ClientAddr struct {
	URL       url.URL // the first URL given for the address; listen on it
	Plaintext bool    // an http:// or unix:// URL names the address
	TLS       bool    // an https:// or unixs:// URL names the address
}

// ClientAddrs groups the client URLs by address, in the order given.
func ClientAddrs(us []url.URL) []*ClientAddr {
	var out []*ClientAddr
	byAddr := map[string]*ClientAddr{}
	for _, u := range us {
		addr := u.Host
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			addr = "unix:" + u.Host + u.Path
		}
		a := byAddr[addr]
		if a == nil {
			a = &ClientAddr{URL: u}
			byAddr[addr] = a
			out = append(out, a)
		}
		if Secure(u) {
			a.TLS = true
		} else {
			a.Plaintext = true
		}
	}
	return out
}
