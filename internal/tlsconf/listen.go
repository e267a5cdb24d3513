package tlsconf

import (
	"errors"
	"net"
	"net/url"
	"os"

	"go.etcd.io/etcd/client/pkg/v3/transport"
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

// ListenClient listens on client URL u, without TLS: clientport.Serve adds it (a client
// address may take TLS and plaintext connections both, told apart by their first bytes).
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

// ClientAddr is one address of the client port and how it is served: etcd serves the
// URLs that share an address (http://h:p and https://h:p) on one listener.
type ClientAddr struct {
	URL       url.URL // the first URL given for the address; listen on it
	Plaintext bool    // an http:// or unix:// URL names the address
	TLS       bool    // an https:// or unixs:// URL names the address
}

// ClientAddrs groups the client URLs by address, in the order given: one listener
// each, served by clientport.Serve with the address's Plaintext and TLS.
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
