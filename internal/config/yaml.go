package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// fileConfig is the subset of etcd's configYAML that metastore implements, with etcd's
// keys and types: URL lists are comma-separated strings, heartbeat-interval and
// election-timeout are milliseconds, log-outputs is a YAML list.
type fileConfig struct {
	Name                       string   `json:"name"`
	DataDir                    string   `json:"data-dir"`
	WALDir                     string   `json:"wal-dir"`
	SnapshotCount              uint64   `json:"snapshot-count"`
	SnapshotCatchUpEntries     uint64   `json:"snapshot-catchup-entries"`
	HeartbeatInterval          uint     `json:"heartbeat-interval"`
	ElectionTimeout            uint     `json:"election-timeout"`
	InitialElectionTickAdvance bool     `json:"initial-election-tick-advance"`
	StrictReconfigCheck        bool     `json:"strict-reconfig-check"`
	MaxLearners                int      `json:"max-learners"`
	AuthToken                  string   `json:"auth-token"`
	AuthTokenTTL               uint     `json:"auth-token-ttl"`
	BcryptCost                 uint     `json:"bcrypt-cost"`
	QuotaBackendBytes          int64    `json:"quota-backend-bytes"`
	MaxTxnOps                  uint     `json:"max-txn-ops"`
	MaxRequestBytes            uint     `json:"max-request-bytes"`
	ListenPeerURLs             string   `json:"listen-peer-urls"`
	ListenClientURLs           string   `json:"listen-client-urls"`
	AdvertisePeerURLs          string   `json:"initial-advertise-peer-urls"`
	AdvertiseClientURLs        string   `json:"advertise-client-urls"`
	InitialCluster             string   `json:"initial-cluster"`
	InitialClusterState        string   `json:"initial-cluster-state"`
	InitialClusterToken        string   `json:"initial-cluster-token"`
	AutoCompactionMode         string   `json:"auto-compaction-mode"`
	AutoCompactionRetention    string   `json:"auto-compaction-retention"`
	Logger                     string   `json:"logger"`
	LogLevel                   string   `json:"log-level"`
	LogFormat                  string   `json:"log-format"`
	LogOutputs                 []string `json:"log-outputs"`
	StorageEngine              string   `json:"storage-engine"`
	EnablePprof                bool     `json:"enable-pprof"`

	ClientSecurity         securityConfig `json:"client-transport-security"`
	PeerSecurity           securityConfig `json:"peer-transport-security"`
	SelfSignedCertValidity uint           `json:"self-signed-cert-validity"`
	CipherSuites           []string       `json:"cipher-suites"`
	TLSMinVersion          string         `json:"tls-min-version"`
	TLSMaxVersion          string         `json:"tls-max-version"`

	// WatchProgress is a time.Duration in etcd's YAML: nanoseconds.
	WatchProgress time.Duration `json:"watch-progress-notify-interval"`

	servingFile // serving.go
}

// LoadFile reads an etcd YAML configuration file into a Config (defaults for absent keys),
// without deriving defaults or validating; Parse does both. Keys of etcd options metastore
// does not implement land in Ignored with a warning; unknown keys are warned about
// (etcd ignores them silently).
func LoadFile(path string) (*Config, []string, error) { return loadFile(path) }

func loadFile(path string) (*Config, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	c := NewConfig()
	c.ConfigFile = path
	fc := fileConfig{
		Name: c.Name, SnapshotCount: c.SnapshotCount, SnapshotCatchUpEntries: c.SnapshotCatchUpEntries,
		HeartbeatInterval: uint(c.HeartbeatInterval.Milliseconds()), ElectionTimeout: uint(c.ElectionTimeout.Milliseconds()),
		InitialElectionTickAdvance: c.InitialElectionTickAdvance,
		StrictReconfigCheck:        c.StrictReconfigCheck, MaxLearners: c.MaxLearners,
		AuthToken: c.Auth.Token, AuthTokenTTL: c.Auth.TokenTTL, BcryptCost: c.Auth.BcryptCost,
		MaxTxnOps: c.MaxTxnOps, MaxRequestBytes: c.MaxRequestBytes,
		WatchProgress:  c.WatchProgress,
		InitialCluster: c.InitialCluster, InitialClusterState: c.InitialClusterState, InitialClusterToken: c.InitialClusterToken,
		AutoCompactionMode: c.AutoCompactionMode, AutoCompactionRetention: c.AutoCompactionRetention,
		Logger: c.Logger, LogLevel: c.LogLevel, LogFormat: c.LogFormat, LogOutputs: c.LogOutputs,
		StorageEngine:          c.StorageEngine,
		SelfSignedCertValidity: c.SelfSignedCertValidity, TLSMinVersion: c.TLSMinVersion, TLSMaxVersion: c.TLSMaxVersion,
	}
	fc.servingFile = fileServing(c.Serving)
	if err := yaml.Unmarshal(b, &fc); err != nil {
		return nil, nil, err
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, nil, err
	}

	c.Name, c.DataDir, c.WALDir = fc.Name, fc.DataDir, fc.WALDir
	c.SnapshotCount, c.SnapshotCatchUpEntries = fc.SnapshotCount, fc.SnapshotCatchUpEntries
	c.HeartbeatInterval = time.Duration(fc.HeartbeatInterval) * time.Millisecond
	c.ElectionTimeout = time.Duration(fc.ElectionTimeout) * time.Millisecond
	c.InitialElectionTickAdvance = fc.InitialElectionTickAdvance
	c.StrictReconfigCheck, c.MaxLearners = fc.StrictReconfigCheck, fc.MaxLearners
	c.Auth = AuthFlags{Token: fc.AuthToken, TokenTTL: fc.AuthTokenTTL, BcryptCost: fc.BcryptCost}
	c.QuotaBackendBytes, c.MaxTxnOps, c.MaxRequestBytes = fc.QuotaBackendBytes, fc.MaxTxnOps, fc.MaxRequestBytes
	c.InitialCluster, c.InitialClusterState, c.InitialClusterToken = fc.InitialCluster, fc.InitialClusterState, fc.InitialClusterToken
	c.AutoCompactionMode, c.AutoCompactionRetention = fc.AutoCompactionMode, fc.AutoCompactionRetention
	c.Logger, c.LogLevel, c.LogFormat, c.LogOutputs = fc.Logger, fc.LogLevel, fc.LogFormat, fc.LogOutputs
	c.StorageEngine, c.EnablePprof = fc.StorageEngine, fc.EnablePprof
	c.WatchProgress = fc.WatchProgress
	c.Serving = fc.serving()
	c.ClientTLS, c.PeerTLS = fc.ClientSecurity.files(), fc.PeerSecurity.files()
	c.ClientAutoTLS, c.PeerAutoTLS = fc.ClientSecurity.AutoTLS, fc.PeerSecurity.AutoTLS
	c.SelfSignedCertValidity, c.CipherSuites = fc.SelfSignedCertValidity, fc.CipherSuites
	c.TLSMinVersion, c.TLSMaxVersion = fc.TLSMinVersion, fc.TLSMaxVersion
	if c.SelfSignedCertValidity == 0 { // as etcd
		c.SelfSignedCertValidity = DefaultSelfSignedCertValidity
	}
	for _, u := range []struct {
		key string
		val string
		dst *[]url.URL
	}{
		{"listen-peer-urls", fc.ListenPeerURLs, &c.ListenPeerURLs},
		{"listen-client-urls", fc.ListenClientURLs, &c.ListenClientURLs},
		{"initial-advertise-peer-urls", fc.AdvertisePeerURLs, &c.AdvertisePeerURLs},
		{"advertise-client-urls", fc.AdvertiseClientURLs, &c.AdvertiseClientURLs},
	} {
		if u.val == "" {
			continue
		}
		us, err := ParseURLs(strings.Split(u.val, ","))
		if err != nil {
			return nil, nil, fmt.Errorf("unexpected error setting up %s: %w", u.key, err)
		}
		*u.dst = us
	}

	implemented := fileKeys()
	known := map[string]bool{}
	for _, k := range etcdFileKeys {
		known[k] = true
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var warnings []string
	for _, k := range keys {
		c.ExplicitlySet[k] = true
		switch {
		case implemented[k]:
		case known[k]:
			c.Ignored[k] = fileValueString(raw[k])
			warnings = append(warnings, fmt.Sprintf("config file key %q is not implemented by metastore yet; ignored", k))
		default:
			warnings = append(warnings, fmt.Sprintf("config file key %q is unknown to etcd; ignored", k))
		}
	}
	if c.Ignored["discovery-srv"] != "" && c.InitialCluster == DefaultInitialCluster {
		c.InitialCluster = ""
	}
	return c, warnings, nil
}

// fileKeys is the set of YAML keys fileConfig decodes.
func fileKeys() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(fileConfig{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = true
	}
	for k := range servingFileKeys() {
		m[k] = true
	}
	return m
}

// fileValueString renders an ignored YAML value as a flag value would read: null is "",
// a list is comma-joined, a mapping is JSON.
func fileValueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i := range x {
			parts[i] = fileValueString(x[i])
		}
		return strings.Join(parts, ",")
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}
