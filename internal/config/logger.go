package config

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EncoderConfig is etcd's zap encoder configuration (logutil.DefaultZapLoggerConfig):
// keys "level", "ts", "caller", "msg"; lowercase levels; timestamps in UTC-offset ISO8601
// with microseconds, e.g. 2026-11-25T20:41:54.335485Z.
func EncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:       "ts",
		LevelKey:      "level",
		NameKey:       "logger",
		CallerKey:     "caller",
		MessageKey:    "msg",
		StacktraceKey: "stacktrace",
		LineEnding:    zapcore.DefaultLineEnding,
		EncodeLevel:   zapcore.LowercaseLevelEncoder,
		EncodeTime: func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(t.Format("2006-01-02T15:04:05.000000Z0700"))
		},
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
}

// ZapConfig is the zap.Config etcd builds for --logger=zap, --log-level, --log-format and
// --log-outputs: "default" and "stderr" write to stderr, "stdout" to stdout, anything else
// is a file path ("/dev/null" discards everything). systemd/journal is not supported and
// falls back to stderr (as etcd does when journald is unreachable).
func (c *Config) ZapConfig() (zap.Config, error) {
	lvl, err := zapLevel(c.LogLevel)
	if err != nil {
		return zap.Config{}, err
	}
	format := c.LogFormat
	if format == "" {
		format = DefaultLogFormat
	}
	if format != "json" && format != "console" {
		return zap.Config{}, fmt.Errorf("unknown log format: %s, supported values json, console", c.LogFormat)
	}
	var paths []string
	for _, o := range c.LogOutputs {
		switch o {
		case DefaultLogOutput, "stderr", "systemd/journal", "":
			paths = append(paths, "stderr")
		case "stdout":
			paths = append(paths, "stdout")
		default:
			paths = append(paths, o)
		}
	}
	if len(paths) == 0 {
		paths = []string{"stderr"}
	}
	paths = mergePaths(paths)
	return zap.Config{
		Level:            zap.NewAtomicLevelAt(lvl),
		Sampling:         &zap.SamplingConfig{Initial: 100, Thereafter: 100},
		Encoding:         format,
		EncoderConfig:    EncoderConfig(),
		OutputPaths:      paths,
		ErrorOutputPaths: append([]string(nil), paths...),
	}, nil
}

// NewLogger builds the logger ZapConfig describes.
func (c *Config) NewLogger() (*zap.Logger, error) {
	zc, err := c.ZapConfig()
	if err != nil {
		return nil, err
	}
	if c.EnableLogRotation {
		return c.newRotatingLogger(zc) // logrotate.go
	}
	return zc.Build()
}

func mergePaths(ps []string) []string {
	for _, p := range ps {
		if p == "/dev/null" {
			return []string{"/dev/null"}
		}
	}
	return uniqueSorted(ps)
}

// WarningsString joins Parse warnings for display, one per line.
func WarningsString(ws []string) string { return strings.Join(ws, "\n") }
