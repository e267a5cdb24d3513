package config

// The etcd v3.7.3 flags metastore accepts but does not implement yet (embed.Config.AddFlags
// and etcdmain.newConfig). Each is parsed as etcd parses it, so a malformed value fails as
// in etcd, and setting it yields one warning. When a flag gets implemented, move it to
// newFlagSet and a Config field.

type flagKind int

const (
	kindString flagKind = iota
	kindBool
	kindUint
	kindUint32
	kindInt
	kindDuration
	kindURLs
	kindStrings
	kindChoice
	kindChoices
	kindLegacy // etcd's IgnoredFlag: bool-like, accepted silently by etcd
)

type flagSpec struct {
	name    string
	kind    flagKind
	choices []string
}

var unimplementedFlags = []flagSpec{
	{name: "listen-client-http-urls", kind: kindURLs},
	{name: "max-snapshots", kind: kindUint},
	{name: "max-wals", kind: kindUint},
	{name: "backend-bbolt-freelist-type", kind: kindString},
	{name: "backend-batch-interval", kind: kindDuration},
	{name: "backend-batch-limit", kind: kindInt},
	{name: "socket-reuse-port", kind: kindBool},
	{name: "socket-reuse-address", kind: kindBool},
	{name: "raft-read-timeout", kind: kindDuration},
	{name: "raft-write-timeout", kind: kindDuration},
	{name: "discovery-endpoints", kind: kindStrings},
	{name: "discovery-token", kind: kindString},
	{name: "discovery-dial-timeout", kind: kindDuration},
	{name: "discovery-request-timeout", kind: kindDuration},
	{name: "discovery-keepalive-time", kind: kindDuration},
	{name: "discovery-keepalive-timeout", kind: kindDuration},
	{name: "discovery-insecure-transport", kind: kindBool},
	{name: "discovery-insecure-skip-tls-verify", kind: kindBool},
	{name: "discovery-cert", kind: kindString},
	{name: "discovery-key", kind: kindString},
	{name: "discovery-cacert", kind: kindString},
	{name: "discovery-user", kind: kindString},
	{name: "discovery-password", kind: kindString},
	{name: "discovery-srv", kind: kindString},
	{name: "discovery-srv-name", kind: kindString},
	{name: "discovery-fallback", kind: kindChoice, choices: []string{"exit", "proxy"}},
	{name: "pre-vote", kind: kindBool},
	{name: "cors", kind: kindStrings},
	{name: "host-whitelist", kind: kindStrings},
	{name: "corrupt-check-time", kind: kindDuration},
	{name: "compact-hash-check-time", kind: kindDuration},
	{name: "compaction-batch-limit", kind: kindInt},
	{name: "compaction-sleep-interval", kind: kindDuration},
	{name: "downgrade-check-time", kind: kindDuration},
	{name: "memory-mlock", kind: kindBool},
	{name: "bootstrap-defrag-threshold-megabytes", kind: kindUint},
	{name: "unsafe-no-fsync", kind: kindBool},
	{name: "force-new-cluster", kind: kindBool},
	{name: "feature-gates", kind: kindString},
	{name: "v2-deprecation", kind: kindChoices, choices: []string{"write-only", "write-only-skip-check", "write-only-drop-data", "gone"}},
}

// etcdIgnoredFlags are flags etcd itself registers only to ignore them (etcdmain "ignored").
var etcdIgnoredFlags = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
	"max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
	"retry-interval", "snapshot", "v", "vv", "test.coverprofile", "test.outputdir",
}

// deprecatedFlags are etcd's deprecation notices, repeated in our warning.
var deprecatedFlags = map[string]string{
	"max-snapshots":  "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
	"v2-deprecation": "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
}

// etcdFileKeys are the top-level keys etcd's config file decoder (embed.configYAML) knows.
// Keys outside this list are silently ignored by etcd.
var etcdFileKeys = []string{
	"name", "data-dir", "wal-dir", "snapshot-count", "snapshot-catchup-entries", "max-snapshots", "max-wals",
	"heartbeat-interval", "election-timeout", "initial-election-tick-advance", "backend-batch-interval",
	"backend-batch-limit", "backend-bbolt-freelist-type", "quota-backend-bytes", "max-txn-ops", "max-request-bytes",
	"max-concurrent-streams", "self-signed-cert-validity", "cipher-suites", "tls-min-version", "tls-max-version",
	"initial-cluster-state", "discovery-srv", "discovery-srv-name", "discovery-config", "initial-cluster",
	"initial-cluster-token", "strict-reconfig-check", "auto-compaction-mode", "auto-compaction-retention",
	"grpc-keepalive-min-time", "grpc-keepalive-interval", "grpc-keepalive-timeout", "grpc-additional-server-options",
	"socket-options", "pre-vote", "auth-token", "bcrypt-cost", "auth-token-ttl", "corrupt-check-time",
	"compact-hash-check-time", "compaction-batch-limit", "compaction-sleep-interval", "watch-progress-notify-interval",
	"warning-apply-duration", "bootstrap-defrag-threshold-megabytes", "warning-unary-request-duration", "max-learners",
	"force-new-cluster", "enable-pprof", "metrics", "listen-metrics-urls", "enable-distributed-tracing",
	"distributed-tracing-address", "distributed-tracing-service-name", "distributed-tracing-instance-id",
	"distributed-tracing-sampling-rate", "logger", "log-level", "log-format", "log-outputs", "enable-log-rotation",
	"log-rotation-config-json", "enable-grpc-gateway", "unsafe-no-fsync", "downgrade-check-time", "memory-mlock",
	"v2-deprecation", "listen-peer-urls", "listen-client-urls", "listen-client-http-urls",
	"initial-advertise-peer-urls", "advertise-client-urls", "cors", "host-whitelist", "client-transport-security",
	"peer-transport-security", "feature-gates",
}
