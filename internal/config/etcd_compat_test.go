package config

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"github.com/metastore/metastore/internal/etcdbin"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var etcdBinary = etcdbin.Path("etcd")

// helpFlags returns, for every flag `etcd --help` prints, the argument to try: the
// default value shown in the help (--flag=value) or the bare flag when none is shown.
func helpFlags(t *testing.T) [][2]string {
	out, err := exec.Command(etcdBinary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("etcd --help: %v", err)
	}
	re := regexp.MustCompile(`^  --([a-z0-9.-]+)(?: '(.*)'| (\S+))?$`)
	var flags [][2]string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		arg := "--" + m[1]
		switch {
		case strings.Contains(sc.Text(), "'"):
			arg += "=" + m[2]
		case m[3] != "":
			arg += "=" + m[3]
		}
		flags = append(flags, [2]string{m[1], arg})
	}
	if len(flags) < 100 {
		t.Fatalf("only %d flags found in etcd --help", len(flags))
	}
	return flags
}

// runEtcd runs the real etcd with args in an empty directory and environment and returns
// its exit code and the first line of its stderr.
func runEtcd(t *testing.T, args ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcdBinary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running etcd %q: %v", args, err)
	}
	first, _, _ := strings.Cut(stderr.String(), "\n")
	return cmd.ProcessState.ExitCode(), first
}

// TestEveryEtcdHelpFlagParsesAsInEtcd runs the real etcd and our Parse on each flag
// printed by `etcd --help`, with its help default as value, plus --election-timeout=1 so
// that a command line etcd accepts fails validation (exit 1) instead of starting a server.
// A flag etcd accepts must parse here; a flag etcd rejects (exit 2, e.g. --discovery,
// printed by the help but not defined) must be rejected here with the same message.
func TestEveryEtcdHelpFlagParsesAsInEtcd(t *testing.T) {
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("real etcd binary not available at %s (%v): cannot compare flag parsing", etcdBinary, err)
	}
	if testing.Short() {
		t.Skip("runs the real etcd once per flag; skipped in -short mode")
	}
	accepted := 0
	for _, f := range helpFlags(t) {
		args := []string{f[1], "--election-timeout=1"}
		code, line := runEtcd(t, args...)
		_, _, err := Parse(args, nil)
		var fe *FlagError
		switch code {
		case 2:
			if !errors.As(err, &fe) || fe.Msg != line {
				t.Errorf("%q: etcd rejects it with %q (exit 2); we return %v", args, line, err)
			}
		case 1:
			accepted++
			if err == nil || errors.As(err, &fe) {
				t.Errorf("%q: etcd accepts the flag (then fails validation); we return %v", args, err)
			}
		default:
			t.Errorf("%q: unexpected etcd exit %d (%s)", args, code, line)
		}
	}
	if accepted < 100 {
		t.Errorf("only %d help flags accepted by etcd; the comparison is not meaningful", accepted)
	}
}

// TestEveryRegisteredFlagIsEtcds checks the other direction: each flag we register is
// listed by etcd --help, except our own flags (--storage-engine and the off-by-default
// client limits), --version and --config-file (in etcd's usage text) and the legacy names
// etcd registers only to ignore them.
func TestEveryRegisteredFlagIsEtcds(t *testing.T) {
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("real etcd binary not available at %s (%v)", etcdBinary, err)
	}
	names := map[string]bool{"storage-engine": true, "version": true, "config-file": true,
		"max-client-connections": true, "client-request-rate": true, "client-request-burst": true}
	for _, n := range etcdIgnoredFlags {
		names[n] = true
	}
	for _, f := range helpFlags(t) {
		names[f[0]] = true
	}
	newFlagSet(NewConfig()).VisitAll(func(f *flag.Flag) {
		if !names[f.Name] {
			t.Errorf("we register --%s, which etcd --help does not list", f.Name)
		}
	})
}
