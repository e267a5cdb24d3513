package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/internal/config"
)

// pki is a CA and one certificate it signed for localhost / 127.0.0.1, usable as
// server and client certificate, written to files.
type pki struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	cert                      tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p := &pki{caFile: filepath.Join(dir, "ca.crt"), certFile: filepath.Join(dir, "m.crt"), keyFile: filepath.Join(dir, "m.key")}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{p.caFile, "CERTIFICATE", caDER}, {p.certFile, "CERTIFICATE", der}, {p.keyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	if p.cert, err = tls.LoadX509KeyPair(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pki) info() *transport.TLSInfo {
	return &transport.TLSInfo{CertFile: p.certFile, KeyFile: p.keyFile, TrustedCAFile: p.caFile}
}

func (p *pki) clientConfig(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, ServerName: "localhost"}
	if withCert {
		c.Certificates = []tls.Certificate{p.cert}
	}
	return c
}

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
	p := newPKI(t)
	l, err := ListenPeer(mustURL(t, "https://127.0.0.1:0"), p.info())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "peer") })}
	go hs.Serve(l)
	defer hs.Close()
	u := "https://" + l.Addr().String() + "/"

	dial, err := PeerClientConfig(p.info())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: dial}, Timeout: 5 * time.Second}
	if body, err := get(c, u); err != nil || body != "peer" {
		t.Fatalf("member's own dial config: %q %v", body, err)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientConfig(false)}, Timeout: 5 * time.Second}
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

// TestServeClientTLS: over TLS, gRPC (HTTP/2 via ALPN) reaches the gRPC server and
// plain HTTP requests the handler; with a plaintext URL on the same address both
// kinds of connection are served.
func TestServeClientTLS(t *testing.T) {
	p := newPKI(t)
	for _, plaintext := range []bool{false, true} {
		g := grpc.NewServer()
		healthpb.RegisterHealthServer(g, health.NewServer())
		l, err := ListenClient(mustURL(t, "https://127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
		go func() { done <- ServeClient(l, plaintext, p.info(), g, h) }()
		addr := l.Addr().String()

		check := func(creds credentials.TransportCredentials) error {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				return err
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
		if err := check(credentials.NewTLS(p.clientConfig(true))); err != nil {
			t.Errorf("plaintext %v: gRPC over TLS: %v", plaintext, err)
		}
		if err := check(credentials.NewTLS(p.clientConfig(false))); err == nil {
			t.Errorf("plaintext %v: gRPC over TLS without a client certificate was served", plaintext)
		}
		if err := check(insecure.NewCredentials()); (err == nil) != plaintext {
			t.Errorf("plaintext %v: plaintext gRPC: %v", plaintext, err)
		}
		for _, h2 := range []bool{false, true} {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientConfig(true), ForceAttemptHTTP2: h2}, Timeout: 5 * time.Second}
			body, err := get(c, "https://"+addr+"/x")
			if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]; err != nil || body != want {
				t.Errorf("plaintext %v: https GET (h2 %v): %q %v, want %q", plaintext, h2, body, err, want)
			}
		}
		body, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/x")
		if (err == nil && body == "HTTP/1.1") != plaintext {
			t.Errorf("plaintext %v: http GET: %q %v", plaintext, body, err)
		}

		g.Stop()
		l.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeClient returned %v after its listener was closed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ServeClient did not return after its listener was closed")
		}
	}
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
