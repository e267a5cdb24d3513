package config

import (
	"errors"
	"fmt"
	"github.com/metastore/metastore/internal/membership"
	"net"
	"net/url"
	"sort"
	"strings"

	"go.uber.org/zap/zapcore"
)

// ParseURLs parses a list of URLs as etcd's types.NewURLs does: each is trimmed; the
// scheme must be http, https, unix or unixs; http(s) URLs must be "host:port" with no
// path. The result is sorted by String() and deduplicated (as etcd's flags.UniqueURLs).
func ParseURLs(strs []string) ([]url.URL, error) {
	if len(strs) == 0 {
		return nil, errors.New("no valid URLs given")
	}
	seen := map[string]bool{}
	var out []url.URL
	for _, in := range strs {
		u, err := membership.ParseURL(in)
		if err != nil {
			return nil, err
		}
		if seen[u.String()] {
			continue
		}
		seen[u.String()] = true
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func mustURLs(s string) []url.URL {
	us, err := ParseURLs(strings.Split(s, ","))
	if err != nil {
		panic(err)
	}
	return us
}

// Validate applies etcd's embed.Config.Validate checks that concern the flags metastore
// implements, in etcd's order and with etcd's messages, then ours (storage engine), then etcd's TLS checks (see validateTLS).
// It also fills AutoCompactionPeriod / AutoCompactionRevisions.
func (c *Config) Validate() error {
	if err := c.validateLogging(); err != nil {
		return err
	}
	if err := c.Serving.validate(c.LogOutputs); err != nil {
		return err
	}
	for _, us := range [][]url.URL{c.ListenPeerURLs, c.ListenClientURLs} {
		if err := checkBindURLs(us); err != nil {
			return err
		}
	}
	if err := checkHostURLs(c.AdvertisePeerURLs); err != nil {
		return fmt.Errorf(`--initial-advertise-peer-urls %q must be "host:port" (%w)`,
			strings.Join(URLStrings(c.AdvertisePeerURLs), ","), err)
	}
	if err := checkHostURLs(c.AdvertiseClientURLs); err != nil {
		return fmt.Errorf(`--advertise-client-urls %q must be in the format "host:port", "unix:/path/to/socket" or "unixs:/path/to/socket" (%w)`,
			strings.Join(URLStrings(c.AdvertiseClientURLs), ","), err)
	}
	if c.InitialClusterState != ClusterStateNew && c.InitialClusterState != ClusterStateExisting {
		return fmt.Errorf("unexpected clusterState %q", c.InitialClusterState)
	}
	nSet := 0
	for _, set := range []bool{c.InitialCluster != "", c.Ignored["discovery-srv"] != "", c.Ignored["discovery-endpoints"] != ""} {
		if set {
			nSet++
		}
	}
	if nSet > 1 {
		return ErrConflictBootstrapFlags
	}
	tickMs, electionMs := c.HeartbeatInterval.Milliseconds(), c.ElectionTimeout.Milliseconds()
	if tickMs <= 0 {
		return fmt.Errorf("--heartbeat-interval must be >0 (set to %dms)", tickMs)
	}
	if electionMs <= 0 {
		return fmt.Errorf("--election-timeout must be >0 (set to %dms)", electionMs)
	}
	if 5*tickMs > electionMs {
		return fmt.Errorf("--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]", electionMs, tickMs)
	}
	if c.ElectionTimeout > maxElectionTimeout {
		return fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than %vms", electionMs, maxElectionTimeout.Milliseconds())
	}
	if c.ListenClientURLs != nil && c.AdvertiseClientURLs == nil {
		return ErrUnsetAdvertiseClientURLs
	}
	if c.Metrics != "basic" && c.Metrics != "extensive" {
		return fmt.Errorf("unknown metrics level %q (basic or extensive)", c.Metrics)
	}
	switch c.AutoCompactionMode {
	case CompactionModeRevision, CompactionModePeriodic:
	case "":
		return errors.New("undefined auto-compaction-mode")
	default:
		return fmt.Errorf("unknown auto-compaction-mode %q", c.AutoCompactionMode)
	}
	if err := c.parseCompactionRetention(); err != nil {
		return err
	}

	switch c.StorageEngine { // ours
	case StorageEnginePebble, StorageEngineRocksDB:
	default:
		return fmt.Errorf("unknown --storage-engine %q (supported: %s, %s)", c.StorageEngine, StorageEnginePebble, StorageEngineRocksDB)
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	return c.validateTLS()
}

// validateLogging mirrors etcd's setupLogging checks.
func (c *Config) validateLogging() error {
	switch c.Logger {
	case "capnslog":
		return fmt.Errorf("--logger=capnslog is removed in v3.5")
	case "zap":
	default:
		return fmt.Errorf("unknown logger option %q", c.Logger)
	}
	if len(c.LogOutputs) > 1 {
		for _, v := range c.LogOutputs {
			if v == DefaultLogOutput {
				return fmt.Errorf("multi logoutput for %q is not supported yet", DefaultLogOutput)
			}
		}
	}
	if _, err := zapLevel(c.LogLevel); err != nil {
		return err
	}
	switch c.LogFormat {
	case "json", "console", "":
	default:
		return fmt.Errorf("unknown log format: %s, supported values json, console", c.LogFormat)
	}
	return nil
}

// zapLevel converts --log-level. etcd panics on an unknown level; we return an error.
func zapLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug", "info", "warn", "error", "dpanic", "panic", "fatal":
		var l zapcore.Level
		err := l.UnmarshalText([]byte(s))
		return l, err
	case "":
		return zapcore.InfoLevel, nil
	}
	return 0, fmt.Errorf("unrecognized level: %q", s)
}

// checkBindURLs: a listen URL must name an IP address (or localhost).
func checkBindURLs(urls []url.URL) error {
	for _, u := range urls {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			continue
		}
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			return err
		}
		if host == "localhost" {
			continue
		}
		if net.ParseIP(host) == nil {
			return fmt.Errorf("expected IP in URL for binding (%s)", u.String())
		}
	}
	return nil
}

// checkHostURLs: an advertised URL must have a non-empty host.
func checkHostURLs(urls []url.URL) error {
	for _, u := range urls {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			continue
		}
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			return err
		}
		if host == "" {
			return fmt.Errorf("unexpected empty host (%s)", u.String())
		}
	}
	return nil
}
