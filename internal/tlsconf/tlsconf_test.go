package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/tlsconf/tlsconftest"
)

func mustURL(t *testing.T, s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}

func get(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPeerListenerRequiresTrustedClientCert: with a trusted CA, the peer port only
// talks to peers presenting a certificate that CA signed; the transport's dial
// configuration (PeerClientConfig) presents the member's certificate.
func TestPeerListenerRequiresTrustedClientCert(t *testing.T) {
	p := tlsconftest.NewPKI(t)
	l, err := ListenPeer(mustURL(t, "https://127.0.0.1:0"), p.Info())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "peer") })}
	go hs.Serve(l)
	defer hs.Close()
	u := "https://" + l.Addr().String() + "/"

	dial, err := PeerClientConfig(p.Info())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: dial}, Timeout: 5 * time.Second}
	if body, err := get(c, u); err != nil || body != "peer" {
		t.Fatalf("member's own dial config: %q %v", body, err)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientConfig(false)}, Timeout: 5 * time.Second}
	if _, err := get(noCert, u); err == nil {
		t.Fatal("a peer without a client certificate was served")
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if _, err := get(plain, "http://"+l.Addr().String()+"/"); err == nil {
		t.Fatal("plaintext HTTP to a TLS peer port was served")
	}
}

func TestListenPeerWithoutCertificate(t *testing.T) {
	if _, err := ListenPeer(mustURL(t, "https://127.0.0.1:0"), &transport.TLSInfo{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("https without certificate: %v", err)
	}
	bad := &transport.TLSInfo{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}
	if _, err := ListenPeer(mustURL(t, "https://127.0.0.1:0"), bad); err == nil {
		t.Fatal("missing certificate files were accepted")
	}
	// http:// ignores the certificate settings, as in etcd.
	l, err := ListenPeer(mustURL(t, "http://127.0.0.1:0"), bad)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func TestClientAddrs(t *testing.T) {
	var us []url.URL
	for _, s := range []string{"http://127.0.0.1:1", "https://127.0.0.1:1", "https://127.0.0.1:2", "unixs://a.sock", "unix://a.sock"} {
		us = append(us, mustURL(t, s))
	}
	var got []string
	for _, a := range ClientAddrs(us) {
		got = append(got, a.URL.String()+" plain="+map[bool]string{true: "y", false: "n"}[a.Plaintext]+" tls="+map[bool]string{true: "y", false: "n"}[a.TLS])
	}
	want := "http://127.0.0.1:1 plain=y tls=y|https://127.0.0.1:2 plain=n tls=y|unixs://a.sock plain=y tls=y"
	if strings.Join(got, "|") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, "|"), want)
	}
}

// TestInfoFromConfig: flags map onto etcd's TLSInfo; auto TLS writes a self-signed
// certificate under the data dir unless certificates are given.
func TestInfoFromConfig(t *testing.T) {
	cfg := config.NewConfig()
	cfg.DataDir = t.TempDir()
	cfg.ClientAutoTLS, cfg.PeerAutoTLS = true, true
	cfg.PeerTLS = config.TLSFiles{CertFile: "p.crt", KeyFile: "p.key", TrustedCAFile: "ca.crt", ClientCertAuth: true}
	cfg.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
	cfg.TLSMaxVersion = "TLS1.2"
	lg := zap.NewNop()
	ci, err := ClientInfo(cfg, lg)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Empty() || filepath.Dir(ci.CertFile) != filepath.Join(cfg.DataDir, "fixtures", "client") {
		t.Errorf("client auto TLS: %v", ci)
	}
	if len(ci.CipherSuites) != 1 || ci.MinVersion != tls.VersionTLS12 || ci.MaxVersion != tls.VersionTLS12 {
		t.Errorf("client common settings: %v %x %x", ci.CipherSuites, ci.MinVersion, ci.MaxVersion)
	}
	pi, err := PeerInfo(cfg, lg)
	if err != nil {
		t.Fatal(err)
	}
	if pi.CertFile != "p.crt" || pi.TrustedCAFile != "ca.crt" || !pi.ClientCertAuth {
		t.Errorf("peer certificates given win over --peer-auto-tls: %v", pi)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "fixtures", "peer")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("peer self-signed certificate generated although certificates were given: %v", err)
	}
}
