package config

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
)

// EnvPrefix is the prefix of the environment variables etcd maps onto flags.
const EnvPrefix = "ETCD"

// FlagToEnv is etcd's flags.FlagToEnv: "data-dir" -> "ETCD_DATA_DIR".
func FlagToEnv(name string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse builds a validated Config from the command-line arguments (without the program
// name) and the environment (as os.Environ()). It returns human-readable warnings, one
// line each, for every accepted-but-ignored input. See the package comment for the order.
//
// Errors: ErrHelp for -h/--help; *FlagError for syntax errors; anything else is a
// configuration error. ExitCode maps them to etcd's exit statuses. With --version,
// PrintVersion is true and nothing else is checked.
func Parse(args []string, environ []string) (*Config, []string, error) {
	c := NewConfig()
	fs := newFlagSet(c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, ErrHelp
		}
		return nil, nil, &FlagError{Msg: err.Error()}
	}
	if fs.NArg() != 0 {
		return nil, nil, fmt.Errorf("%q is not a valid flag", fs.Arg(0))
	}
	if c.PrintVersion {
		return c, nil, nil
	}

	env := envMap(environ)
	if c.ConfigFile == "" {
		c.ConfigFile = env[FlagToEnv("config-file")]
	}
	if c.ConfigFile != "" {
		var cmdline []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config-file" {
				cmdline = append(cmdline, "--"+f.Name)
			}
		})
		fc, warnings, err := loadFile(c.ConfigFile)
		if err != nil {
			return nil, warnings, err
		}
		if len(cmdline) > 0 {
			warnings = append(warnings, fmt.Sprintf("flags %s are ignored because --config-file %s is given (as in etcd)",
				strings.Join(cmdline, " "), c.ConfigFile))
		}
		var envs []string
		for k := range env {
			if strings.HasPrefix(k, EnvPrefix+"_") && k != FlagToEnv("config-file") {
				envs = append(envs, k)
			}
		}
		if len(envs) > 0 {
			sort.Strings(envs)
			warnings = append(warnings, fmt.Sprintf("environment variables %s are ignored because --config-file %s is given (as in etcd)",
				strings.Join(envs, " "), c.ConfigFile))
		}
		fc.deriveDefaults()
		return fc, append(warnings, fc.valueWarnings()...), fc.Validate()
	}

	var warnings []string
	if v, ok := env[FlagToEnv("version")]; ok && v != "" {
		warnings = append(warnings, fmt.Sprintf("cannot set special environment variable %s=%s; ignored", FlagToEnv("version"), v))
		delete(env, FlagToEnv("version"))
	}
	onCmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdline[f.Name] = true })
	envWarnings, err := setFromEnv(fs, env, onCmdline)
	warnings = append(warnings, envWarnings...)
	if err != nil {
		return nil, warnings, err
	}
	fs.Visit(func(f *flag.Flag) { c.ExplicitlySet[f.Name] = true })

	// As etcdmain.configFromCmdLine: an explicit --listen-client-urls without
	// --advertise-client-urls drops the default advertise URL (Validate then fails).
	if c.ExplicitlySet["listen-client-urls"] && !c.ExplicitlySet["advertise-client-urls"] {
		c.AdvertiseClientURLs = nil
	}
	// Discovery replaces the default initial cluster.
	if (c.Ignored["discovery-srv"] != "" || c.Ignored["discovery-endpoints"] != "") && !c.ExplicitlySet["initial-cluster"] {
		c.InitialCluster = ""
	}
	warnings = append(warnings, c.ignoredWarnings()...)
	c.deriveDefaults()
	return c, append(warnings, c.valueWarnings()...), c.Validate()
}

// valueWarnings are etcd's start-up warnings about accepted but unwise values.
func (c *Config) valueWarnings() []string {
	var ws []string
	if c.QuotaBackendBytes > MaxQuotaBackendBytes {
		ws = append(ws, fmt.Sprintf("quota exceeds the maximum value: --quota-backend-bytes %d > %d", c.QuotaBackendBytes, MaxQuotaBackendBytes))
	}
	return ws
}

// envMap turns "K=V" entries into a map; the first occurrence of a key wins, as in os.Getenv.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// setFromEnv is etcd's flags.SetFlagsFromEnv + verifyEnv: every flag not given on the
// command line takes ETCD_<FLAG> when that is non-empty; a variable for a flag that was
// given on the command line is an error; other ETCD_* variables produce a warning.
func setFromEnv(fs *flag.FlagSet, env map[string]string, onCmdline map[string]bool) ([]string, error) {
	used := map[string]bool{}
	shadowed := map[string]bool{}
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := FlagToEnv(f.Name)
		if onCmdline[f.Name] {
			shadowed[key] = true
			return
		}
		val := env[key]
		if val == "" {
			return
		}
		used[key] = true
		if err := fs.Set(f.Name, val); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("invalid value %q for %s: %w", val, key, err)
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var warnings []string
	for _, k := range keys {
		switch {
		case used[k]:
		case shadowed[k]:
			return warnings, fmt.Errorf("conflicting environment variable %q is shadowed by corresponding command-line flag (either unset environment variable or disable flag)", k)
		case strings.HasPrefix(k, EnvPrefix+"_"):
			warnings = append(warnings, fmt.Sprintf("unrecognized environment variable %s=%s; ignored", k, env[k]))
		}
	}
	return warnings, nil
}

// ignoredWarnings is one line per ignored flag, sorted by name.
func (c *Config) ignoredWarnings() []string {
	names := make([]string, 0, len(c.Ignored))
	for n := range c.Ignored {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if c.implementedIgnored(n) { // integrity.go
			continue
		}
		out = append(out, ignoredWarning(n))
	}
	return out
}

func ignoredWarning(name string) string {
	for _, l := range etcdIgnoredFlags {
		if l == name {
			return fmt.Sprintf("flag --%s is no longer supported by etcd; ignored", name)
		}
	}
	w := fmt.Sprintf("flag --%s is not implemented by metastore yet; ignored", name)
	if d, ok := deprecatedFlags[name]; ok {
		w += " (" + d + ")"
	}
	return w
}
