package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The etcd test certificates (testdata/tls/README.md).
var (
	tlsCA          = mustAbs("testdata/tls/ca.crt")
	tlsCert        = mustAbs("testdata/tls/server.crt")
	tlsKey         = mustAbs("testdata/tls/server.key.insecure")
	tlsRevokedCert = mustAbs("testdata/tls/server-revoked.crt")
	tlsRevokedKey  = mustAbs("testdata/tls/server-revoked.key.insecure")
	tlsCRL         = mustAbs("testdata/tls/revoke.crl")
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

// manualTLSArgs are the flags etcd's e2e framework starts a "PeerTLS and ClientTLS"
// cluster with.
func manualTLSArgs() []string {
	return []string{
		"--cert-file", tlsCert, "--key-file", tlsKey, "--trusted-ca-file", tlsCA,
		"--peer-cert-file", tlsCert, "--peer-key-file", tlsKey, "--peer-trusted-ca-file", tlsCA,
	}
}

// newClusterURLs is newCluster with the client and peer URL schemes given: member i
// listens on clientURLs(port) for clients ("%d" in each URL is the port).
func newClusterURLs(t *testing.T, bin binary, n int, clientURLs, peerURL string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: bin}
	ports := freePorts(t, 2*n)
	var initial []string
	base := t.TempDir()
	for i := 0; i < n; i++ {
		cu := strings.ReplaceAll(clientURLs, "%d", fmt.Sprint(ports[2*i]))
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			dataDir:   filepath.Join(base, fmt.Sprintf("m%d", i)),
			clientURL: cu,
			peerURL:   fmt.Sprintf(peerURL, ports[2*i+1]),
			logPath:   filepath.Join(base, fmt.Sprintf("m%d.log", i)),
		}
		initial = append(initial, m.name+"="+m.peerURL)
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		m.args = append([]string{
			"--name", m.name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", "itest-" + t.Name(), "--initial-cluster-state", "new",
		}, extra...)
	}
	t.Cleanup(c.close)
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	return c
}

// tlsClient is a clientv3 client of eps using cfg.
func tlsClient(t *testing.T, cfg *tls.Config, eps ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: cfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// clientTLS trusts the test CA and, when cert is set, presents cert/key.
func clientTLS(t *testing.T, cert, key string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(tlsCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA file")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg
}

// refused asserts that a put through cli fails: the server refused the connection.
func refused(t *testing.T, cli *clientv3.Client, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "refused", what); err == nil {
		t.Errorf("%s: put succeeded, want the connection refused", what)
	}
}

// TestPeerAndClientTLS starts 3 members as etcd's e2e "PeerTLS and ClientTLS" case
// does: https client and peer URLs, certificates signed by one CA, the CA trusted on
// both ports (so both require a client certificate). Writes replicate over TLS peer
// connections; clients that cannot prove who they are, or do not trust the server,
// get nothing.
func TestPeerAndClientTLS(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newClusterURLs(t, b, 3, "https://127.0.0.1:%d", "https://127.0.0.1:%d", manualTLSArgs()...)
		ctx := ctxT(t)
		good := clientTLS(t, tlsCert, tlsKey)

		// Linearizable reads on every member: each needs its peers (over TLS) for the read index.
		w := tlsClient(t, good, c.members[0].clientURL)
		if _, err := w.Put(ctx, "k", "v1"); err != nil {
			t.Fatal(err)
		}
		for i, m := range c.members {
			g, err := tlsClient(t, good, m.clientURL).Get(ctx, "k")
			if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v1" {
				t.Fatalf("get on member %d: %v %v", i, err, g)
			}
		}
		// Members advertise https client URLs.
		ml, err := w.MemberList(ctx)
		if err != nil || len(ml.Members) != 3 {
			t.Fatalf("member list: %v %v", err, ml)
		}

		refused(t, tlsClient(t, clientTLS(t, "", ""), c.members[1].clientURL), "no client certificate")
		noCA := clientTLS(t, tlsCert, tlsKey)
		noCA.RootCAs = nil
		refused(t, tlsClient(t, noCA, c.members[1].clientURL), "server CA not trusted")
		plain := strings.Replace(c.members[1].clientURL, "https://", "http://", 1)
		refused(t, tlsClient(t, nil, plain), "plaintext to a TLS port")

		// The HTTP endpoints are served on the TLS port too, over HTTP/1.1 and HTTP/2.
		for _, h2 := range []bool{false, true} {
			tr := &http.Transport{TLSClientConfig: good.Clone(), ForceAttemptHTTP2: h2}
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(c.members[2].clientURL + "/health")
			if err != nil {
				t.Fatalf("https /health (h2 %v): %v", h2, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"health":"true"`) || (resp.ProtoMajor == 2) != h2 {
				t.Fatalf("https /health (h2 %v): %s %s %q", h2, resp.Proto, resp.Status, body)
			}
			tr.CloseIdleConnections()
		}
	})
}

// TestClientCRL: with --client-crl-file a certificate the CRL revokes is refused, even
// though the trusted CA signed it.
func TestClientCRL(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newClusterURLs(t, b, 1, "https://127.0.0.1:%d", "http://127.0.0.1:%d",
			"--cert-file", tlsCert, "--key-file", tlsKey, "--trusted-ca-file", tlsCA,
			"--client-cert-auth", "--client-crl-file", tlsCRL)
		ep := c.members[0].clientURL
		if _, err := tlsClient(t, clientTLS(t, tlsCert, tlsKey), ep).Put(ctxT(t), "k", "v"); err != nil {
			t.Fatal(err)
		}
		refused(t, tlsClient(t, clientTLS(t, tlsRevokedCert, tlsRevokedKey), ep), "revoked client certificate")
	})
}

// TestAutoTLS: --auto-tls and --peer-auto-tls generate self-signed certificates
// (under <data-dir>/fixtures); peers accept each other's, and clients that skip
// verification can talk to the cluster.
func TestAutoTLS(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newClusterURLs(t, b, 3, "https://127.0.0.1:%d", "https://127.0.0.1:%d", "--auto-tls", "--peer-auto-tls")
		ctx := ctxT(t)
		insecure := &tls.Config{InsecureSkipVerify: true}
		if _, err := tlsClient(t, insecure, c.members[0].clientURL).Put(ctx, "k", "auto"); err != nil {
			t.Fatal(err)
		}
		g, err := tlsClient(t, insecure, c.members[2].clientURL).Get(ctx, "k")
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "auto" {
			t.Fatalf("get: %v %v", err, g)
		}
		for _, side := range []string{"client", "peer"} {
			if _, err := os.Stat(filepath.Join(c.members[1].dataDir, "fixtures", side, "cert.pem")); err != nil {
				t.Errorf("self-signed %s certificate: %v", side, err)
			}
		}
		// A client verifying the server against the test CA refuses the self-signed certificate.
		refused(t, tlsClient(t, clientTLS(t, "", ""), c.members[1].clientURL), "self-signed server certificate")
	})
}

// TestPlaintextAndTLSOnOneAddress: http:// and https:// URLs naming the same address
// share one listener, as in etcd: each connection is served as it starts.
func TestPlaintextAndTLSOnOneAddress(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newClusterURLs(t, b, 1, "http://127.0.0.1:%d,https://127.0.0.1:%d", "http://127.0.0.1:%d",
			"--cert-file", tlsCert, "--key-file", tlsKey)
		urls := strings.Split(c.members[0].clientURL, ",")
		ctx := ctxT(t)
		if _, err := tlsClient(t, nil, urls[0]).Put(ctx, "k", "plain"); err != nil {
			t.Fatalf("plaintext: %v", err)
		}
		g, err := tlsClient(t, clientTLS(t, "", ""), urls[1]).Get(ctx, "k")
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "plain" {
			t.Fatalf("TLS get: %v %v", err, g)
		}
	})
}
