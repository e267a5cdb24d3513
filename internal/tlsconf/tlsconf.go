// Package tlsconf owns TLS as etcd v3.7.3 does it for the client and peer ports: it
// turns the TLS part of a validated config.Config into etcd's transport.TLSInfo (the
// certificate files, or certificates it generates for --auto-tls / --peer-auto-tls),
// opens the peer listeners and the plain client listeners (one per client address,
// ClientAddrs). The certificate and listener mechanics are etcd's own client library
// (go.etcd.io/etcd/client/pkg/v3/transport), so certificates are loaded, verified and
// reloaded exactly as etcd does:
//
//   - a server certificate is re-read from its files on every handshake;
//   - a trusted CA file (--trusted-ca-file, --peer-trusted-ca-file) or --client-cert-auth
//     makes the server require a client certificate signed by that CA;
//   - a CRL file refuses the certificates it revokes (checked after the handshake);
//   - on the peer port a client certificate must also name the address it connects from
//     (IP SAN, or a DNS SAN resolving to it), unless --peer-skip-client-san-verification;
//   - http:// and unix:// URLs ignore the certificates (with etcd's warning).
//
// It does not parse flags (config does), interpret requests, or serve the client port:
// clientport multiplexes that port with the TLS settings given here; the transport
// dials peers with PeerClientConfig.
package tlsconf

import (
	"crypto/tls"
	"net/url"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
)

// Secure reports whether u is served with TLS: https:// and unixs://.
func Secure(u url.URL) bool { return u.Scheme == "https" || u.Scheme == "unixs" }

// ClientInfo returns the TLS settings of the client port, as etcd's
// configureClientListeners computes them: the certificate files, or with --auto-tls and
// no files a self-signed certificate for the listen hosts written to
// <data-dir>/fixtures/client; then the cipher suites and TLS versions. The result is
// Empty when the client port has no certificate. It warns, as etcd does, about
// certificates given for http:// or unix:// URLs, where they are not used.
func ClientInfo(cfg *config.Config, lg *zap.Logger) (*transport.TLSInfo, error) {
	info, err := withAutoTLS(fromFiles(cfg.ClientTLS, lg), cfg, lg, cfg.ClientAutoTLS, "client", cfg.ListenClientURLs)
	if err != nil {
		return nil, err
	}
	for _, u := range cfg.ListenClientURLs {
		if Secure(u) {
			continue
		}
		if !info.Empty() {
			lg.Warn("scheme is http or unix while key and cert files are present; ignoring key and cert files", zap.String("client-url", u.String()))
		}
		if info.ClientCertAuth {
			lg.Warn("scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL", zap.String("client-url", u.String()))
		}
	}
	if !info.Empty() {
		lg.Info("starting with client TLS", zap.String("tls-info", info.String()), zap.Strings("cipher-suites", cfg.CipherSuites))
	}
	return info, nil
}

// withAutoTLS applies --auto-tls or --peer-auto-tls (auto) for one port (which is "client"
// or "peer"): ignored with a warning when certificate files are given, else a
// self-signed certificate for the listen hosts. Then the cipher suites and TLS versions.
func withAutoTLS(info *transport.TLSInfo, cfg *config.Config, lg *zap.Logger, auto bool, which string, listen []url.URL) (*transport.TLSInfo, error) {
	if auto {
		if !info.Empty() {
			lg.Warn("ignoring " + which + " auto TLS since certs given")
		} else {
			hosts := make([]string, 0, len(listen))
			for _, u := range listen {
				hosts = append(hosts, u.Host)
			}
			var err error
			if info, err = selfCert(cfg, lg, which, hosts); err != nil {
				return nil, err
			}
		}
	}
	setCommon(info, cfg)
	return info, nil
}

// PeerInfo returns the TLS settings of the peer port and of the connections this
// member opens to its peers, as etcd's configurePeerListeners computes them (with
// --peer-auto-tls: <data-dir>/fixtures/peer). It warns about certificates given for
// http:// peer URLs.
func PeerInfo(cfg *config.Config, lg *zap.Logger) (*transport.TLSInfo, error) {
	info, err := withAutoTLS(fromFiles(cfg.PeerTLS, lg), cfg, lg, cfg.PeerAutoTLS, "peer", cfg.ListenPeerURLs)
	if err != nil {
		return nil, err
	}
	if !info.Empty() {
		lg.Info("starting with peer TLS", zap.String("tls-info", info.String()), zap.Strings("cipher-suites", cfg.CipherSuites))
	}
	for _, u := range cfg.ListenPeerURLs {
		if u.Scheme != "http" {
			continue
		}
		if !info.Empty() {
			lg.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", zap.String("peer-url", u.String()))
		}
		if info.ClientCertAuth {
			lg.Warn("scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL", zap.String("peer-url", u.String()))
		}
	}
	return info, nil
}

// PeerClientConfig is the TLS configuration this member dials its peers with, as
// etcd's rafthttp builds it: the peer certificate (or --peer-client-cert-file) as client
// certificate when one is given, the peer trusted CA as roots (system roots without
// one), and no verification of the peers' certificates with --peer-auto-tls.
func PeerClientConfig(info *transport.TLSInfo) (*tls.Config, error) {
	return info.ClientConfig()
}

func fromFiles(f config.TLSFiles, lg *zap.Logger) *transport.TLSInfo {
	return &transport.TLSInfo{
		CertFile:            f.CertFile,
		KeyFile:             f.KeyFile,
		ClientCertFile:      f.ClientCertFile,
		ClientKeyFile:       f.ClientKeyFile,
		TrustedCAFile:       f.TrustedCAFile,
		ClientCertAuth:      f.ClientCertAuth,
		CRLFile:             f.CRLFile,
		AllowedCNs:          f.AllowedCNs,
		AllowedHostnames:    f.AllowedHostnames,
		SkipClientSANVerify: f.SkipClientSANVerify,
		Logger:              lg,
	}
}

// selfCert generates (or reuses) a self-signed certificate under
// <data-dir>/fixtures/<side>, as etcd's ClientSelfCert / PeerSelfCert.
func selfCert(cfg *config.Config, lg *zap.Logger, side string, hosts []string) (*transport.TLSInfo, error) {
	info, err := transport.SelfCert(lg, filepath.Join(cfg.DataDir, "fixtures", side), hosts, cfg.SelfSignedCertValidity)
	if err != nil {
		return nil, err
	}
	info.Logger = lg
	return &info, nil
}

// setCommon applies the settings both sides share: cipher suites, TLS versions.
func setCommon(info *transport.TLSInfo, cfg *config.Config) {
	info.CipherSuites = cfg.CipherSuiteIDs()
	info.MinVersion, info.MaxVersion = cfg.TLSVersions()
}
