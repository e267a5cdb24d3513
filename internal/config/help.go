package config

import (
	"flag"
	"fmt"
	"strings"
)

// UsageText is printed to stderr after a *FlagError, as etcd prints its usage line.
const UsageText = `Usage:

  etcd [flags]
    Start a metastore server (an etcd v3 compatible drop-in).

  etcd --version
    Show the version of etcd and metastore.

  etcd -h | --help
    Show the help information.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
`

// HelpText is printed to stdout for -h / --help: the usage and every flag with its default.
// Flags metastore accepts but ignores are listed last.
func HelpText() string {
	var impl, ign strings.Builder
	fs := newFlagSet(NewConfig())
	fs.VisitAll(func(f *flag.Flag) {
		b := &impl
		if _, ok := f.Value.(*ignoredValue); ok {
			b = &ign
		}
		fmt.Fprintf(b, "  --%s '%s'\n    %s\n", f.Name, f.DefValue, f.Usage)
	})
	return UsageText + "\nFlags:\n" + impl.String() + "\nAccepted for compatibility with etcd, not implemented (a warning is logged):\n" + ign.String()
}
