package config

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/tlsutil"
)

// TLS defaults, as in etcd v3.7.3.
const (
	DefaultSelfSignedCertValidity = uint(1) // years
	DefaultTLSMinVersion          = "TLS1.2"
	DefaultTLSMaxVersion          = "" // Go's default
)

// TLSFiles is the TLS configuration of one side (client or peer), the fields of
// etcd's transport.TLSInfo that etcd's flags and config file set. It is Empty when
// neither a certificate nor a key is given.
type TLSFiles struct {
	CertFile       string // --cert-file / --peer-cert-file
	KeyFile        string // --key-file / --peer-key-file
	ClientCertFile string // --client-cert-file / --peer-client-cert-file: presented when dialing, instead of CertFile
	ClientKeyFile  string // --client-key-file / --peer-client-key-file
	TrustedCAFile  string // --trusted-ca-file / --peer-trusted-ca-file: when set, clients must present a certificate it signed
	ClientCertAuth bool   // --client-cert-auth / --peer-client-cert-auth
	CRLFile        string // --client-crl-file / --peer-crl-file
	// AllowedCNs and AllowedHostnames restrict the accepted client certificates
	// (--peer-cert-allowed-cn, --peer-cert-allowed-hostname, --client-cert-allowed-hostname).
	AllowedCNs       []string
	AllowedHostnames []string
	// SkipClientSANVerify (--peer-skip-client-san-verification) skips checking that a
	// peer's client certificate names the address it connects from.
	SkipClientSANVerify bool
}

// Empty is etcd's TLSInfo.Empty: no certificate and no key given.
func (t TLSFiles) Empty() bool { return t.CertFile == "" && t.KeyFile == "" }

// securityConfig is etcd's YAML client-transport-security / peer-transport-security.
// As in etcd, the file has no CRL key.
type securityConfig struct {
	CertFile            string   `json:"cert-file"`
	KeyFile             string   `json:"key-file"`
	ClientCertFile      string   `json:"client-cert-file"`
	ClientKeyFile       string   `json:"client-key-file"`
	CertAuth            bool     `json:"client-cert-auth"`
	TrustedCAFile       string   `json:"trusted-ca-file"`
	AutoTLS             bool     `json:"auto-tls"`
	AllowedCNs          []string `json:"allowed-cn"`
	AllowedHostnames    []string `json:"allowed-hostname"`
	SkipClientSANVerify bool     `json:"skip-client-san-verification,omitempty"`
}

func (s securityConfig) files() TLSFiles {
	return TLSFiles{
		CertFile: s.CertFile, KeyFile: s.KeyFile, ClientCertFile: s.ClientCertFile, ClientKeyFile: s.ClientKeyFile,
		ClientCertAuth: s.CertAuth, TrustedCAFile: s.TrustedCAFile, AllowedCNs: s.AllowedCNs,
		AllowedHostnames: s.AllowedHostnames, SkipClientSANVerify: s.SkipClientSANVerify,
	}
}

// addTLSFlags registers etcd's security flags on fs, writing into c.
func addTLSFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.ClientTLS.CertFile, "cert-file", "", "Path to the client server TLS cert file.")
	fs.StringVar(&c.ClientTLS.KeyFile, "key-file", "", "Path to the client server TLS key file.")
	fs.StringVar(&c.ClientTLS.ClientCertFile, "client-cert-file", "", "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.")
	fs.StringVar(&c.ClientTLS.ClientKeyFile, "client-key-file", "", "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.")
	fs.BoolVar(&c.ClientTLS.ClientCertAuth, "client-cert-auth", false, "Enable client cert authentication.")
	fs.StringVar(&c.ClientTLS.CRLFile, "client-crl-file", "", "Path to the client certificate revocation list file.")
	fs.Var(&listValue{&c.ClientTLS.AllowedHostnames}, "client-cert-allowed-hostname", "Comma-separated list of allowed SAN hostnames for client cert authentication.")
	fs.StringVar(&c.ClientTLS.TrustedCAFile, "trusted-ca-file", "", "Path to the client server TLS trusted CA cert file.")
	fs.BoolVar(&c.ClientAutoTLS, "auto-tls", false, "Client TLS using generated certificates")
	fs.StringVar(&c.PeerTLS.CertFile, "peer-cert-file", "", "Path to the peer server TLS cert file.")
	fs.StringVar(&c.PeerTLS.KeyFile, "peer-key-file", "", "Path to the peer server TLS key file.")
	fs.StringVar(&c.PeerTLS.ClientCertFile, "peer-client-cert-file", "", "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.")
	fs.StringVar(&c.PeerTLS.ClientKeyFile, "peer-client-key-file", "", "Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.")
	fs.BoolVar(&c.PeerTLS.ClientCertAuth, "peer-client-cert-auth", false, "Enable peer client cert authentication.")
	fs.StringVar(&c.PeerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "Path to the peer server TLS trusted CA file.")
	fs.BoolVar(&c.PeerAutoTLS, "peer-auto-tls", false, "Peer TLS using generated certificates")
	fs.UintVar(&c.SelfSignedCertValidity, "self-signed-cert-validity", c.SelfSignedCertValidity, "The validity period of the client and peer certificates, unit is year")
	fs.StringVar(&c.PeerTLS.CRLFile, "peer-crl-file", "", "Path to the peer certificate revocation list file.")
	fs.Var(&listValue{&c.PeerTLS.AllowedCNs}, "peer-cert-allowed-cn", "Comma-separated list of allowed CNs for inter-peer TLS authentication.")
	fs.Var(&listValue{&c.PeerTLS.AllowedHostnames}, "peer-cert-allowed-hostname", "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.")
	fs.Var(&listValue{&c.CipherSuites}, "cipher-suites", "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).")
	fs.BoolVar(&c.PeerTLS.SkipClientSANVerify, "peer-skip-client-san-verification", false, "Skip verification of SAN field in client certificate for peer connections.")
	fs.StringVar(&c.TLSMinVersion, "tls-min-version", c.TLSMinVersion, "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.")
	fs.StringVar(&c.TLSMaxVersion, "tls-max-version", c.TLSMaxVersion, "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to Go).")
}

// listValue is etcd's flags.StringsValue: comma-separated, order and duplicates kept
// (cipher suites are tried in the given order); "" is a list of one empty string.
type listValue struct{ p *[]string }

func (v *listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v *listValue) Set(s string) error {
	*v.p = strings.Split(s, ",")
	return nil
}

// validateTLS is the end of etcd's Config.Validate (TLS versions, cipher suites) followed
// by the checks etcd makes when it opens its listeners (cipher suite names, a secure
// URL needs a certificate), with etcd's messages.
func (c *Config) validateTLS() error {
	minVersion, err := tlsutil.GetTLSVersion(c.TLSMinVersion)
	if err != nil {
		return err
	}
	maxVersion, err := tlsutil.GetTLSVersion(c.TLSMaxVersion)
	if err != nil {
		return err
	}
	// maxVersion 0 lets Go pick the highest version.
	if maxVersion != 0 && minVersion > maxVersion {
		return fmt.Errorf("min version (%s) is greater than max version (%s)", c.TLSMinVersion, c.TLSMaxVersion)
	}
	if minVersion == tls.VersionTLS13 && len(c.CipherSuites) > 0 {
		return fmt.Errorf("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	if len(c.CipherSuites) > 0 {
		if _, err := tlsutil.GetCipherSuites(c.CipherSuites); err != nil {
			return err
		}
	}
	if c.SelfSignedCertValidity == 0 && (c.ClientAutoTLS || c.PeerAutoTLS) {
		return fmt.Errorf("selfSignedCertValidity is invalid,it should be greater than 0")
	}
	// etcd checks the peer side first (it opens peer listeners first).
	if c.PeerTLS.Empty() && !c.PeerAutoTLS {
		for _, u := range c.ListenPeerURLs {
			if isSecure(u) {
				return fmt.Errorf("cannot listen on TLS for %s: KeyFile and CertFile are not presented", u.Host)
			}
		}
	}
	if c.ClientTLS.Empty() && !c.ClientAutoTLS {
		for _, u := range c.ListenClientURLs {
			if isSecure(u) {
				return fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", u.String())
			}
		}
	}
	return nil
}

// isSecure reports whether u is served with TLS (https, unixs).
func isSecure(u url.URL) bool { return u.Scheme == "https" || u.Scheme == "unixs" }

// TLSVersions returns the --tls-min-version and --tls-max-version values as crypto/tls
// constants (0 for "let Go choose"). Validate has checked them.
func (c *Config) TLSVersions() (minVersion, maxVersion uint16) {
	minVersion, _ = tlsutil.GetTLSVersion(c.TLSMinVersion)
	maxVersion, _ = tlsutil.GetTLSVersion(c.TLSMaxVersion)
	return minVersion, maxVersion
}

// CipherSuiteIDs returns --cipher-suites as crypto/tls IDs, nil when unset. Validate
// has checked them.
func (c *Config) CipherSuiteIDs() []uint16 {
	if len(c.CipherSuites) == 0 {
		return nil
	}
	ids, _ := tlsutil.GetCipherSuites(c.CipherSuites)
	return ids
}
