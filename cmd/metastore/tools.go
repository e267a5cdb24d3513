package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cheggaaa/pb/v3"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The offline tools are cobra subcommands of the one binary, as etcdutl's are of its
// own: `metastore snapshot save|status|restore` (snapshot.go, restore.go) and
// `metastore check` (check.go) and `metastore defrag` (defrag.go). Without one of their names as the first argument the
// binary is the server, with etcd's flags, exactly as before (a bare word is no flag
// of etcd's, so no server command line starts with one).
var toolNames = map[string]bool{"snapshot": true, "check": true, "defrag": true}

// runTool runs the tool named by args[0], if args name one; ok tells whether they did.
func runTool(args []string) (code int, ok bool) {
	if len(args) == 0 || !toolNames[args[0]] {
		return 0, false
	}
	root := &cobra.Command{
		Use:           "metastore",
		Short:         "MetaStore's offline tools (run without a subcommand, metastore is the server)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(snapshotCommand(), checkCommand(), defragCommand())
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2, true
		}
		return 1, true
	}
	return 0, true
}

// usageError is a command line the tool cannot run (exit code 2).
type usageError struct{ error }

// toolLogger logs to stderr, as etcdutl does, at info level.
func toolLogger() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zapcore.InfoLevel)
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	lg, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}

// progress is a byte-count progress bar on stdout when stdout is a terminal, and
// nothing otherwise (scripts and tests see only the tool's result lines).
type progress struct{ bar *pb.ProgressBar }

func newProgress(out io.Writer, total int64) *progress {
	f, ok := out.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return &progress{}
	}
	bar := pb.Full.New(0)
	bar.SetTotal(total)
	bar.Set(pb.Bytes, true)
	bar.SetWriter(out)
	return &progress{bar: bar.Start()}
}

// set moves the bar to done of total bytes.
func (p *progress) set(done, total int64) {
	if p.bar == nil {
		return
	}
	if total > 0 {
		p.bar.SetTotal(total)
	}
	p.bar.SetCurrent(done)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
