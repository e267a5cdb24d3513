// Command metastore is a drop-in replacement for the etcd v3 server binary: the same
// flags, environment variables and config file, the same gRPC API. This package only
// wires the parts together (see member.go); each part lives in its own package.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
)

// gitSHA is set at build time with -ldflags "-X main.gitSHA=...".
var gitSHA = "Not provided (use make build)"

func main() { os.Exit(run(os.Args[1:], os.Environ())) }

func run(args, environ []string) int {
	if code, ok := runTool(args); ok { // snapshot, check: tools.go
		return code
	}
	cfg, warnings, err := config.Parse(args, environ)
	switch {
	case errors.Is(err, config.ErrHelp):
		fmt.Fprint(os.Stdout, config.HelpText())
		return 0
	case err != nil:
		var fe *config.FlagError
		if errors.As(err, &fe) {
			fmt.Fprintf(os.Stderr, "%v\n%s", err, config.UsageText)
			return config.ExitCode(err)
		}
		// etcd logs this as a JSON warning before it exits.
		lg, _ := config.NewConfig().NewLogger()
		if lg != nil {
			lg.Warn("failed to verify flags", zap.Error(err))
		} else {
			fmt.Fprintf(os.Stderr, "failed to verify flags: %v\n", err)
		}
		return config.ExitCode(err)
	}
	if cfg.PrintVersion {
		fmt.Fprint(os.Stdout, config.VersionText(gitSHA))
		return 0
	}
	lg, err := cfg.NewLogger()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error creating logger: %v\n", err)
		return 1
	}
	defer lg.Sync()
	for _, w := range warnings {
		lg.Warn(w)
	}
	lg.Info("Running: ", zap.Strings("args", os.Args))

	m, err := startMember(cfg, lg)
	if err != nil {
		lg.Error("failed to start", zap.Error(err))
		return 1
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	code := 0
	select {
	case sig := <-sigc:
		lg.Info("received signal; shutting down", zap.String("signal", sig.String()))
	case <-m.done():
		// Fail-stop, as etcd on a WAL or backend error: a member whose Raft or apply
		// loop died must not stay up looking healthy. Its loops have ended, so closing
		// the listeners and storage below is safe; then the process exits non-zero.
		err := m.srv.Err()
		if err == nil {
			err = errors.New("the server stopped without a recorded cause")
		}
		lg.Error("the member has stopped; exiting", zap.Error(err))
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.close(ctx)
	return code
}
