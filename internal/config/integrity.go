package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Integrity is etcd v3.7.3's data-corruption checking, read from the flags (or YAML
// keys) --corrupt-check-time, --compact-hash-check-time and the feature gates
// InitialCorruptCheck and CompactHashCheck (--feature-gates=InitialCorruptCheck=true,…;
// etcd 3.7 has no --experimental-initial-corrupt-check nor --compact-hash-check-enabled
// any more). The flags are parsed where unimplemented ones are (Ignored), as etcd
// parses them, and read here.
type Integrity struct {
	// InitialCorruptCheck: before serving, compare this member's HashKV with its peers'
	// and refuse to start on a mismatch.
	InitialCorruptCheck bool
	// CorruptCheckTime: how often the leader compares the members' HashKV at its
	// current revision (0: never).
	CorruptCheckTime time.Duration
	// CompactHashCheck: every CompactHashCheckTime the leader compares the hashes the
	// members computed at their latest compactions.
	CompactHashCheck     bool
	CompactHashCheckTime time.Duration
}

// DefaultCompactHashCheckTime is etcd's --compact-hash-check-time default.
const DefaultCompactHashCheckTime = time.Minute

// integrityFlags are read by Integrity: no "not implemented" warning for them.
var integrityFlags = map[string]bool{"corrupt-check-time": true, "compact-hash-check-time": true}

// knownFeatureGates are the gates of etcd v3.7.3 that metastore honours (or, for
// the lease checkpoint ones, whose behaviour it always has).
var knownFeatureGates = map[string]bool{
	"InitialCorruptCheck": true, "CompactHashCheck": true,
	"LeaseCheckpoint": true, "LeaseCheckpointPersist": true,
}

// implementedIgnored tells whether an Ignored flag is in fact read (so it needs no
// warning): the integrity flags, and --feature-gates naming only gates we know.
func (c *Config) implementedIgnored(name string) bool {
	if integrityFlags[name] {
		return true
	}
	if name != "feature-gates" {
		return false
	}
	gates, err := parseFeatureGates(c.Ignored[name])
	if err != nil {
		return false
	}
	for g := range gates {
		if !knownFeatureGates[g] {
			return false
		}
	}
	return true
}

// Integrity returns the corruption-check settings, or etcd's error for a bad value.
func (c *Config) Integrity() (Integrity, error) {
	in := Integrity{CompactHashCheckTime: DefaultCompactHashCheckTime}
	var err error
	if v, ok := c.Ignored["corrupt-check-time"]; ok && v != "" {
		if in.CorruptCheckTime, err = time.ParseDuration(v); err != nil {
			return in, fmt.Errorf("invalid value %q for flag -corrupt-check-time: %v", v, errParse)
		}
	}
	if v, ok := c.Ignored["compact-hash-check-time"]; ok && v != "" {
		if in.CompactHashCheckTime, err = time.ParseDuration(v); err != nil {
			return in, fmt.Errorf("invalid value %q for flag -compact-hash-check-time: %v", v, errParse)
		}
	}
	if in.CompactHashCheckTime <= 0 {
		return in, fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", in.CompactHashCheckTime)
	}
	gates, err := parseFeatureGates(c.Ignored["feature-gates"])
	if err != nil {
		return in, err
	}
	in.InitialCorruptCheck = gates["InitialCorruptCheck"]
	in.CompactHashCheck = gates["CompactHashCheck"]
	return in, nil
}

// parseFeatureGates reads etcd's --feature-gates "Name=bool,Name=bool".
func parseFeatureGates(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("missing bool value for %s", kv)
		}
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("invalid value of %s=%s, err: %v", k, v, err)
		}
		out[strings.TrimSpace(k)] = b
	}
	return out, nil
}
