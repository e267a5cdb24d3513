package config

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The serving flags take etcd's defaults, flags, environment and YAML keys and are no
// longer "not implemented".
func TestServingFlags(t *testing.T) {
	c, warnings, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Serving{
		EnableGRPCGateway: true, MaxConcurrentStreams: math.MaxUint32,
		GRPCKeepAliveMinTime: 5 * time.Second, GRPCKeepAliveInterval: 2 * time.Hour, GRPCKeepAliveTimeout: 20 * time.Second,
		WarningApplyDuration: 100 * time.Millisecond, WarningUnaryRequestDuration: 300 * time.Millisecond,
		LogRotationConfigJSON: DefaultLogRotationConfig, TracingAddress: "localhost:4317", TracingServiceName: "etcd",
	}
	if c.Serving != want || len(warnings) != 0 {
		t.Fatalf("defaults = %+v, warnings %v", c.Serving, warnings)
	}
	c, warnings, err = Parse([]string{
		"--enable-grpc-gateway=false", "--max-concurrent-streams", "100", "--grpc-keepalive-min-time=1s",
		"--grpc-keepalive-interval=1m", "--grpc-keepalive-timeout=3s", "--warning-apply-duration=1s",
		"--warning-unary-request-duration=2s", "--enable-distributed-tracing", "--distributed-tracing-address=otel:4317",
		"--distributed-tracing-service-name=m", "--distributed-tracing-instance-id=i1",
		"--distributed-tracing-sampling-rate=1000000", "--max-client-connections=10", "--client-request-rate=2.5",
		"--client-request-burst=5",
	}, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("flags: %v, warnings %v", err, warnings)
	}
	want = Serving{
		MaxConcurrentStreams: 100, GRPCKeepAliveMinTime: time.Second, GRPCKeepAliveInterval: time.Minute,
		GRPCKeepAliveTimeout: 3 * time.Second, WarningApplyDuration: time.Second, WarningUnaryRequestDuration: 2 * time.Second,
		LogRotationConfigJSON: DefaultLogRotationConfig, EnableDistributedTracing: true, TracingAddress: "otel:4317",
		TracingServiceName: "m", TracingInstanceID: "i1", TracingSamplingPerMillion: 1000000,
		MaxClientConnections: 10, ClientRequestRate: 2.5, ClientRequestBurst: 5,
	}
	if c.Serving != want {
		t.Fatalf("flags = %+v", c.Serving)
	}
	c, _, err = Parse(nil, []string{"ETCD_MAX_CONCURRENT_STREAMS=7", "ETCD_ENABLE_GRPC_GATEWAY=false"})
	if err != nil || c.MaxConcurrentStreams != 7 || c.EnableGRPCGateway {
		t.Fatalf("environment: %+v, %v", c.Serving, err)
	}
	path := filepath.Join(t.TempDir(), "etcd.yaml")
	yaml := "max-concurrent-streams: 9\ngrpc-keepalive-min-time: 1000000000\nenable-grpc-gateway: false\n" +
		"distributed-tracing-service-name: svc\nmax-client-connections: 4\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, warnings, err = LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConcurrentStreams != 9 || c.GRPCKeepAliveMinTime != time.Second || c.EnableGRPCGateway ||
		c.TracingServiceName != "svc" || c.MaxClientConnections != 4 || c.GRPCKeepAliveTimeout != 20*time.Second || len(warnings) != 0 {
		t.Fatalf("YAML: %+v, warnings %v, %v", c.Serving, warnings, err)
	}
}

// etcd's checks and messages.
func TestServingValidation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--enable-distributed-tracing", "--distributed-tracing-sampling-rate=-1"}, "tracing sampling rate must be positive"},
		{[]string{"--enable-distributed-tracing", "--distributed-tracing-sampling-rate=1000001"}, "tracing sampling rate must be less than 1000000"},
		{[]string{"--enable-log-rotation"}, "--log-outputs requires a single file path when --log-rotate-config-json is defined"},
		{[]string{"--enable-log-rotation", "--log-outputs=/tmp/a,/tmp/b"}, "--log-outputs requires a single file path"},
		{[]string{"--enable-log-rotation", "--log-outputs=/tmp/a", "--log-rotation-config-json={"}, "improperly formatted log rotation config"},
		{[]string{"--enable-log-rotation", "--log-outputs=/tmp/a", `--log-rotation-config-json={"maxsize":"x"}`}, "invalid log rotation config"},
	} {
		_, _, err := Parse(c.args, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// With rotation the one file output is written through lumberjack, and stderr still
// gets the logs when it is an output too.
func TestLogRotationWritesTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "etcd.log")
	c, _, err := Parse([]string{"--enable-log-rotation", "--log-outputs=" + file, `--log-rotation-config-json={"maxsize": 1}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := c.NewLogger()
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("rotating hello")
	_ = lg.Sync()
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), `"msg":"rotating hello"`) {
		t.Fatalf("log file: %q, %v", b, err)
	}
	// Two loggers in one process (etcd registers a global sink and cannot).
	if _, err := c.NewLogger(); err != nil {
		t.Fatal(err)
	}
}
