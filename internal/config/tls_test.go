package config

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTLSFlags(t *testing.T) {
	c, ws := mustParse(t, []string{
		"--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls", "https://127.0.0.1:2379",
		"--listen-peer-urls", "https://127.0.0.1:2380", "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
		"--cert-file", "s.crt", "--key-file", "s.key", "--trusted-ca-file", "ca.crt", "--client-cert-auth",
		"--client-crl-file", "c.crl", "--client-cert-allowed-hostname", "b.example,a.example",
		"--peer-cert-file", "p.crt", "--peer-key-file", "p.key", "--peer-trusted-ca-file", "pca.crt",
		"--peer-client-cert-auth", "--peer-cert-allowed-cn", "m1,m0", "--peer-skip-client-san-verification",
		"--peer-client-cert-file", "pc.crt", "--peer-client-key-file", "pc.key",
		"--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"--tls-max-version", "TLS1.3",
	}, []string{"ETCD_PEER_CRL_FILE=p.crl"})
	if len(ws) != 0 {
		t.Errorf("TLS flags are implemented, yet warnings: %q", ws)
	}
	wantClient := TLSFiles{CertFile: "s.crt", KeyFile: "s.key", TrustedCAFile: "ca.crt", ClientCertAuth: true,
		CRLFile: "c.crl", AllowedHostnames: []string{"b.example", "a.example"}}
	wantPeer := TLSFiles{CertFile: "p.crt", KeyFile: "p.key", TrustedCAFile: "pca.crt", ClientCertAuth: true,
		CRLFile: "p.crl", AllowedCNs: []string{"m1", "m0"}, SkipClientSANVerify: true,
		ClientCertFile: "pc.crt", ClientKeyFile: "pc.key"}
	if !tlsFilesEqual(c.ClientTLS, wantClient) {
		t.Errorf("client TLS = %+v, want %+v", c.ClientTLS, wantClient)
	}
	if !tlsFilesEqual(c.PeerTLS, wantPeer) {
		t.Errorf("peer TLS = %+v, want %+v", c.PeerTLS, wantPeer)
	}
	// Cipher suites keep the order given: it is the order of preference.
	ids := c.CipherSuiteIDs()
	if len(ids) != 2 || ids[0] != tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 || ids[1] != tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("cipher suites = %v", ids)
	}
	if lo, hi := c.TLSVersions(); lo != tls.VersionTLS12 || hi != tls.VersionTLS13 {
		t.Errorf("versions = %x, %x; want TLS1.2 (default) and TLS1.3", lo, hi)
	}
	if c.SelfSignedCertValidity != 1 {
		t.Errorf("self-signed-cert-validity default = %d, want 1", c.SelfSignedCertValidity)
	}
}

func tlsFilesEqual(a, b TLSFiles) bool {
	return a.CertFile == b.CertFile && a.KeyFile == b.KeyFile && a.ClientCertFile == b.ClientCertFile &&
		a.ClientKeyFile == b.ClientKeyFile && a.TrustedCAFile == b.TrustedCAFile && a.ClientCertAuth == b.ClientCertAuth &&
		a.CRLFile == b.CRLFile && slices.Equal(a.AllowedCNs, b.AllowedCNs) &&
		slices.Equal(a.AllowedHostnames, b.AllowedHostnames) && a.SkipClientSANVerify == b.SkipClientSANVerify
}

// tlsErrorCases are command lines etcd refuses for a TLS reason, with etcd's message.
func tlsErrorCases(peerPort int) []struct {
	args []string
	msg  string
} {
	peer := fmt.Sprintf("127.0.0.1:%d", peerPort)
	return []struct {
		args []string
		msg  string
	}{
		{[]string{"--listen-client-urls", "https://127.0.0.1:0", "--advertise-client-urls", "https://127.0.0.1:2379", "--listen-peer-urls", "http://127.0.0.1:0"},
			"TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:0 with HTTPS scheme"},
		{[]string{"--listen-client-urls", "https://127.0.0.1:0", "--advertise-client-urls", "https://127.0.0.1:2379", "--listen-peer-urls", "http://127.0.0.1:0", "--trusted-ca-file", "ca.crt", "--client-cert-auth"},
			"TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:0 with HTTPS scheme"},
		{[]string{"--listen-peer-urls", "https://" + peer, "--listen-client-urls", "https://127.0.0.1:0", "--advertise-client-urls", "https://127.0.0.1:2379"},
			"cannot listen on TLS for " + peer + ": KeyFile and CertFile are not presented"},
		{[]string{"--tls-min-version", "TLS1.1"}, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-max-version", "tls1.3"}, `unexpected TLS version "tls1.3" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"}, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
			"cipher suites cannot be configured when only TLS1.3 is enabled"},
		{[]string{"--cipher-suites", "bogus", "--listen-peer-urls", "http://127.0.0.1:0", "--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379"},
			`unexpected TLS cipher suite "bogus"`},
	}
}

func TestTLSValidationMessages(t *testing.T) {
	for _, tc := range tlsErrorCases(2380) {
		_, _, err := Parse(tc.args, nil)
		if err == nil || err.Error() != tc.msg || ExitCode(err) != 1 {
			t.Errorf("%q: got %v, want %q (exit 1)", tc.args, err, tc.msg)
		}
	}
	// With a certificate, or --auto-tls / --peer-auto-tls, secure URLs are accepted;
	// a certificate makes no difference to http:// URLs (etcd ignores it there).
	for _, args := range [][]string{
		{"--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls", "https://127.0.0.1:2379", "--cert-file", "s.crt", "--key-file", "s.key"},
		{"--listen-client-urls", "unixs://m.sock", "--advertise-client-urls", "unixs://m.sock", "--auto-tls"},
		{"--listen-peer-urls", "https://127.0.0.1:2380", "--peer-cert-file", "p.crt", "--peer-key-file", "p.key"},
		{"--listen-peer-urls", "https://127.0.0.1:2380", "--peer-auto-tls"},
		{"--cert-file", "s.crt", "--key-file", "s.key", "--client-cert-auth"},
		{"--tls-min-version", "TLS1.3"},
	} {
		if _, _, err := Parse(args, nil); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestTLSValidationMatchesEtcd runs the real etcd on each refused command line and
// checks it refuses it with the same message.
func TestTLSValidationMatchesEtcd(t *testing.T) {
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("real etcd binary not available at %s (%v)", etcdBinary, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, tc := range tlsErrorCases(port) {
		cmd := exec.Command(etcdBinary, append(tc.args, "--data-dir", filepath.Join(t.TempDir(), "d"))...)
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 1 || !etcdLoggedError(string(out), tc.msg) {
			t.Errorf("%q: etcd exit %d, did not log error %q:\n%s", tc.args, cmd.ProcessState.ExitCode(), tc.msg, lastLines(string(out), 3))
		}
	}
}

func etcdLoggedError(out, msg string) bool {
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Error == msg {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func TestTLSConfigFile(t *testing.T) {
	p := writeFile(t, "etcd.yaml", `
listen-client-urls: https://127.0.0.1:2379
advertise-client-urls: https://127.0.0.1:2379
listen-peer-urls: https://127.0.0.1:2380
client-transport-security:
  cert-file: s.crt
  key-file: s.key
  client-cert-auth: true
  trusted-ca-file: ca.crt
peer-transport-security:
  auto-tls: true
  allowed-cn: [m0, m1]
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
tls-max-version: TLS1.2
self-signed-cert-validity: 0
`)
	c, ws, err := Parse([]string{"--config-file", p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
	want := TLSFiles{CertFile: "s.crt", KeyFile: "s.key", ClientCertAuth: true, TrustedCAFile: "ca.crt"}
	if !tlsFilesEqual(c.ClientTLS, want) || c.ClientAutoTLS {
		t.Errorf("client TLS = %+v auto %v", c.ClientTLS, c.ClientAutoTLS)
	}
	if !c.PeerAutoTLS || !c.PeerTLS.Empty() || !slices.Equal(c.PeerTLS.AllowedCNs, []string{"m0", "m1"}) {
		t.Errorf("peer TLS = %+v auto %v", c.PeerTLS, c.PeerAutoTLS)
	}
	if _, hi := c.TLSVersions(); hi != tls.VersionTLS12 || len(c.CipherSuiteIDs()) != 1 {
		t.Errorf("max version %x, ciphers %v", hi, c.CipherSuites)
	}
	// etcd turns a validity of 0 in the file into the default, 1 year.
	if c.SelfSignedCertValidity != 1 {
		t.Errorf("self-signed-cert-validity = %d", c.SelfSignedCertValidity)
	}
}
