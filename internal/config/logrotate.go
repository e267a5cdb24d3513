package config

import (
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// newRotatingLogger builds zc's logger with its one file output (RotationFile) written
// through lumberjack with Rotation's settings, as etcd's --enable-log-rotation; the other
// outputs (stderr, stdout) are written as without rotation. Unlike etcd, no global zap
// sink is registered, so any number of loggers can be built in one process.
func (c *Config) newRotatingLogger(zc zap.Config) (*zap.Logger, error) {
	file, err := c.RotationFile(c.LogOutputs)
	if err != nil {
		return nil, err
	}
	r, err := c.Rotation()
	if err != nil {
		return nil, err
	}
	lj := &lumberjack.Logger{
		Filename: file, MaxSize: r.MaxSize, MaxAge: r.MaxAge, MaxBackups: r.MaxBackups,
		LocalTime: r.LocalTime, Compress: r.Compress,
	}
	drop := func(ps []string) []string {
		return slices.DeleteFunc(slices.Clone(ps), func(p string) bool { return p == file })
	}
	zc.OutputPaths, zc.ErrorOutputPaths = drop(zc.OutputPaths), drop(zc.ErrorOutputPaths)
	if len(zc.ErrorOutputPaths) == 0 {
		zc.ErrorOutputPaths = []string{"stderr"}
	}
	var enc zapcore.Encoder
	if zc.Encoding == "console" {
		enc = zapcore.NewConsoleEncoder(zc.EncoderConfig)
	} else {
		enc = zapcore.NewJSONEncoder(zc.EncoderConfig)
	}
	fileCore := zapcore.NewCore(enc, zapcore.AddSync(lj), zc.Level)
	return zc.Build(zap.WrapCore(func(core zapcore.Core) zapcore.Core {
		if len(zc.OutputPaths) == 0 {
			return fileCore
		}
		return zapcore.NewTee(core, fileCore)
	}))
}
