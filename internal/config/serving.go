package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// Serving holds the client-serving settings: etcd's gRPC limits, the JSON gateway, log
// rotation, slow request/apply warnings and distributed tracing, plus our connection
// and rate limits. It is embedded in Config, so its fields read as Config's.
type Serving struct {
	EnableGRPCGateway     bool          // --enable-grpc-gateway (default true): the JSON API under /v3/
	MaxConcurrentStreams  uint32        // --max-concurrent-streams, per client connection
	GRPCKeepAliveMinTime  time.Duration // --grpc-keepalive-min-time: clients pinging more often are dropped
	GRPCKeepAliveInterval time.Duration // --grpc-keepalive-interval: server-to-client pings (0: none)
	GRPCKeepAliveTimeout  time.Duration // --grpc-keepalive-timeout: wait for a ping's answer (0: none)

	WarningApplyDuration        time.Duration // --warning-apply-duration
	WarningUnaryRequestDuration time.Duration // --warning-unary-request-duration

	EnableLogRotation     bool   // --enable-log-rotation: the one file of --log-outputs rotates (lumberjack)
	LogRotationConfigJSON string // --log-rotation-config-json

	EnableDistributedTracing  bool   // --enable-distributed-tracing (OpenTelemetry, OTLP/gRPC)
	TracingAddress            string // --distributed-tracing-address
	TracingServiceName        string // --distributed-tracing-service-name
	TracingInstanceID         string // --distributed-tracing-instance-id
	TracingSamplingPerMillion int    // --distributed-tracing-sampling-rate: samples per million

	// Ours, off by default: the most client connections open at once on each client
	// listener (more are closed at once), and per client IP address a token bucket of
	// requests per second with a burst; a request beyond it fails with etcd's "too many
	// requests".
	MaxClientConnections int     // --max-client-connections (0: no limit)
	ClientRequestRate    float64 // --client-request-rate (0: no limit)
	ClientRequestBurst   int     // --client-request-burst (0: the rate, at least 1)
}

// Defaults of Serving, etcd's (embed.NewConfig).
const (
	DefaultMaxConcurrentStreams        = math.MaxUint32
	DefaultGRPCKeepAliveMinTime        = 5 * time.Second
	DefaultGRPCKeepAliveInterval       = 2 * time.Hour
	DefaultGRPCKeepAliveTimeout        = 20 * time.Second
	DefaultWarningApplyDuration        = 100 * time.Millisecond
	DefaultWarningUnaryRequestDuration = 300 * time.Millisecond
	DefaultLogRotationConfig           = `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`
	DefaultTracingAddress              = "localhost:4317"
	DefaultTracingServiceName          = "etcd"
	maxSamplingRatePerMillion          = 1000000
)

// ErrLogRotationInvalidLogOutput is etcd's message for rotation without exactly one file.
var ErrLogRotationInvalidLogOutput = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

func defaultServing() Serving {
	return Serving{
		EnableGRPCGateway:           true,
		MaxConcurrentStreams:        DefaultMaxConcurrentStreams,
		GRPCKeepAliveMinTime:        DefaultGRPCKeepAliveMinTime,
		GRPCKeepAliveInterval:       DefaultGRPCKeepAliveInterval,
		GRPCKeepAliveTimeout:        DefaultGRPCKeepAliveTimeout,
		WarningApplyDuration:        DefaultWarningApplyDuration,
		WarningUnaryRequestDuration: DefaultWarningUnaryRequestDuration,
		LogRotationConfigJSON:       DefaultLogRotationConfig,
		TracingAddress:              DefaultTracingAddress,
		TracingServiceName:          DefaultTracingServiceName,
	}
}

// addServingFlags registers Serving's flags with etcd's names, help and defaults.
func addServingFlags(fs *flag.FlagSet, s *Serving) {
	fs.BoolVar(&s.EnableGRPCGateway, "enable-grpc-gateway", s.EnableGRPCGateway, "Enable GRPC gateway.")
	fs.Var(&uint32Value{&s.MaxConcurrentStreams}, "max-concurrent-streams", "Maximum concurrent streams that each client can open at a time.")
	fs.DurationVar(&s.GRPCKeepAliveMinTime, "grpc-keepalive-min-time", s.GRPCKeepAliveMinTime, "Minimum interval duration that a client should wait before pinging server.")
	fs.DurationVar(&s.GRPCKeepAliveInterval, "grpc-keepalive-interval", s.GRPCKeepAliveInterval, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	fs.DurationVar(&s.GRPCKeepAliveTimeout, "grpc-keepalive-timeout", s.GRPCKeepAliveTimeout, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	fs.DurationVar(&s.WarningApplyDuration, "warning-apply-duration", s.WarningApplyDuration, "Time duration after which a warning is generated if watch progress takes more time.")
	fs.DurationVar(&s.WarningUnaryRequestDuration, "warning-unary-request-duration", s.WarningUnaryRequestDuration, "Time duration after which a warning is generated if a unary request takes more time.")
	fs.BoolVar(&s.EnableLogRotation, "enable-log-rotation", false, "Enable log rotation of a single log-outputs file target.")
	fs.StringVar(&s.LogRotationConfigJSON, "log-rotation-config-json", DefaultLogRotationConfig, "Configures log rotation if enabled with a JSON logger config. Default: MaxSize=100(MB), MaxAge=0(days,no limit), MaxBackups=0(no limit), LocalTime=false(UTC), Compress=false(gzip)")
	fs.BoolVar(&s.EnableDistributedTracing, "enable-distributed-tracing", false, "Enable distributed tracing using OpenTelemetry Tracing.")
	fs.StringVar(&s.TracingAddress, "distributed-tracing-address", s.TracingAddress, "Address for distributed tracing used for OpenTelemetry Tracing (if enabled with enable-distributed-tracing flag).")
	fs.StringVar(&s.TracingServiceName, "distributed-tracing-service-name", s.TracingServiceName, "Configures service name for distributed tracing to be used to define service name for OpenTelemetry Tracing (if enabled with enable-distributed-tracing flag). 'etcd' is the default service name. Use the same service name for all instances of etcd.")
	fs.StringVar(&s.TracingInstanceID, "distributed-tracing-instance-id", "", "Configures service instance ID for distributed tracing to be used to define service instance ID key for OpenTelemetry Tracing (if enabled with enable-distributed-tracing flag). There is no default value set. This ID must be unique per etcd instance.")
	fs.IntVar(&s.TracingSamplingPerMillion, "distributed-tracing-sampling-rate", 0, "Number of samples to collect per million spans for OpenTelemetry Tracing (if enabled with enable-distributed-tracing flag).")
	fs.IntVar(&s.MaxClientConnections, "max-client-connections", 0, "metastore only: most client connections open at once per client listener; more are closed at once (0: no limit).")
	fs.Float64Var(&s.ClientRequestRate, "client-request-rate", 0, "metastore only: requests per second each client IP address may make; beyond it (and the burst) requests fail with 'etcdserver: too many requests' (0: no limit).")
	fs.IntVar(&s.ClientRequestBurst, "client-request-burst", 0, "metastore only: requests a client IP address may make at once above --client-request-rate (0: the rate, at least 1).")
}

// validate applies etcd's checks on Serving (and ours on our limits).
func (s *Serving) validate(logOutputs []string) error {
	if s.EnableDistributedTracing {
		if s.TracingSamplingPerMillion < 0 {
			return errors.New("tracing sampling rate must be positive")
		}
		if s.TracingSamplingPerMillion > maxSamplingRatePerMillion {
			return fmt.Errorf("tracing sampling rate must be less than %d", maxSamplingRatePerMillion)
		}
	}
	if s.EnableLogRotation {
		if _, err := s.RotationFile(logOutputs); err != nil {
			return err
		}
		if _, err := s.Rotation(); err != nil {
			return err
		}
	}
	if s.MaxClientConnections < 0 || s.ClientRequestRate < 0 || s.ClientRequestBurst < 0 {
		return errors.New("--max-client-connections, --client-request-rate and --client-request-burst must not be negative")
	}
	return nil
}

// RotationFile is the one file of outputs that rotates (etcd's setupLogRotation rule:
// exactly one output besides default, stderr and stdout).
func (s *Serving) RotationFile(outputs []string) (string, error) {
	var files []string
	for _, o := range outputs {
		switch o {
		case DefaultLogOutput, "stderr", "stdout":
		default:
			files = append(files, o)
		}
	}
	if len(files) != 1 {
		return "", ErrLogRotationInvalidLogOutput
	}
	return files[0], nil
}

// LogRotation is lumberjack's settings, as --log-rotation-config-json spells them.
type LogRotation struct {
	MaxSize    int  `json:"maxsize"`    // megabytes
	MaxAge     int  `json:"maxage"`     // days (0: no limit)
	MaxBackups int  `json:"maxbackups"` // files (0: no limit)
	LocalTime  bool `json:"localtime"`
	Compress   bool `json:"compress"`
}

// Rotation parses LogRotationConfigJSON with etcd's error messages.
func (s *Serving) Rotation() (LogRotation, error) {
	var r LogRotation
	if err := json.Unmarshal([]byte(s.LogRotationConfigJSON), &r); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return r, fmt.Errorf("improperly formatted log rotation config: %w", err)
		case errors.As(err, &typ):
			return r, fmt.Errorf("invalid log rotation config: %w", err)
		default:
			return r, fmt.Errorf("fail to unmarshal log rotation config: %w", err)
		}
	}
	return r, nil
}

// uint32Value is etcd's flags.Uint32Value.
type uint32Value struct{ p *uint32 }

func (v *uint32Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}

func (v *uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return err // etcd's flags.Uint32Value returns strconv's error as is
	}
	*v.p = uint32(n)
	return nil
}

// servingFile is Serving in etcd's YAML (durations in nanoseconds, as etcd's
// time.Duration fields), embedded in fileConfig.
type servingFile struct {
	EnableGRPCGateway           bool          `json:"enable-grpc-gateway"`
	MaxConcurrentStreams        uint32        `json:"max-concurrent-streams"`
	GRPCKeepAliveMinTime        time.Duration `json:"grpc-keepalive-min-time"`
	GRPCKeepAliveInterval       time.Duration `json:"grpc-keepalive-interval"`
	GRPCKeepAliveTimeout        time.Duration `json:"grpc-keepalive-timeout"`
	WarningApplyDuration        time.Duration `json:"warning-apply-duration"`
	WarningUnaryRequestDuration time.Duration `json:"warning-unary-request-duration"`
	EnableLogRotation           bool          `json:"enable-log-rotation"`
	LogRotationConfigJSON       string        `json:"log-rotation-config-json"`
	EnableDistributedTracing    bool          `json:"enable-distributed-tracing"`
	TracingAddress              string        `json:"distributed-tracing-address"`
	TracingServiceName          string        `json:"distributed-tracing-service-name"`
	TracingInstanceID           string        `json:"distributed-tracing-instance-id"`
	TracingSamplingPerMillion   int           `json:"distributed-tracing-sampling-rate"`
	MaxClientConnections        int           `json:"max-client-connections"`
	ClientRequestRate           float64       `json:"client-request-rate"`
	ClientRequestBurst          int           `json:"client-request-burst"`
}

func (f servingFile) serving() Serving { return Serving(f) }

func fileServing(s Serving) servingFile { return servingFile(s) }

// servingFileKeys is the set of YAML keys servingFile decodes.
func servingFileKeys() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(servingFile{})
	for i := 0; i < t.NumField(); i++ {
		m[t.Field(i).Tag.Get("json")] = true
	}
	return m
}
