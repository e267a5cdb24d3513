package lint

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The import direction of docs/ARCHITECTURE.md:
//
//	grpcapi → server → (raftnode, apply) → (raftlog, mvcc, ...) → storage
//
// Each rule applies to a package and the packages below its directory. Paths are
// relative to the module; "p/..." means p and every package below it. Only non-test
// files count: a test may reach across layers to check a whole chain (grpcapi's error
// tests build the lower layers' errors and pass them through server).
var rules = []struct {
	pkg string
	// ours, when set, lists the only packages of this module pkg may import directly.
	ours []string
	// notDeps are packages of this module pkg must not depend on, even indirectly.
	notDeps []string
	// notImports are import paths (standard library, other modules) pkg must not
	// import directly.
	notImports []string
	why        string
}{
	{
		pkg:  "internal/grpcapi",
		ours: []string{"internal/server"},
		why:  "the gRPC layer talks to the server only; the server translates the lower layers' errors into its own (server.TranslateError)",
	},
	{
		pkg:        "internal/apply",
		notDeps:    []string{"internal/server", "internal/raftnode", "internal/raftlog", "internal/grpcapi", "internal/transport", "internal/clientport", "internal/lessor"},
		notImports: []string{"time", "math/rand/...", "crypto/rand", "net/...", "os/exec"},
		why:        "the state machine is deterministic (no clock, randomness or network) and knows nothing of Raft or gRPC",
	},
	{
		pkg:        "internal/lease",
		ours:       []string{"internal/storage"},
		notImports: []string{"time", "math/rand/...", "crypto/rand", "net/...", "os/exec"},
		why:        "the replicated lease table is written by apply: as deterministic, and expiry is the leader's (lessor)",
	},
	{
		pkg:        "internal/auth",
		ours:       []string{"internal/storage"},
		notImports: []string{"time", "math/rand/...", "crypto/rand", "net/...", "os/exec", "golang.org/x/crypto/..."},
		why:        "users, roles and permissions are written by apply: as deterministic (tokens and bcrypt are the server's)",
	},
	{
		pkg:     "internal/lessor",
		ours:    []string{"internal/lease"},
		notDeps: []string{"internal/server", "internal/apply", "internal/mvcc", "internal/raftnode", "internal/grpcapi"},
		why:     "the leader's expiry schedule decides when, and proposes nothing itself",
	},
	{
		pkg:     "internal/lockelect",
		notDeps: []string{"internal/server", "internal/apply", "internal/mvcc", "internal/raftnode", "internal/grpcapi", "internal/lease", "internal/lessor", "internal/storage"},
		why:     "v3lock and v3election go through the clientv3 client they are given, as etcd's",
	},
	{
		pkg:     "internal/raftnode",
		notDeps: []string{"internal/server", "internal/apply", "internal/grpcapi", "internal/mvcc", "internal/clientport", "internal/snap"},
		why:     "the Ready loop does not apply entries nor know the state machine (its position comes through Config.AppliedState) or the client API",
	},
	{
		pkg:     "internal/raftlog",
		notDeps: []string{"internal/server", "internal/raftnode", "internal/apply", "internal/mvcc", "internal/grpcapi", "internal/transport", "internal/storage"},
		why:     "the Raft log knows neither the state machine (only its raftlog.StateMachine: Sync) nor who drives it",
	},
	{
		pkg:  "internal/storage",
		ours: []string{"internal/storage/..."},
		why:  "storage is the bottom layer",
	},
	{
		pkg:        "internal/mvcc",
		notDeps:    []string{"internal/server", "internal/raftnode", "internal/raftlog", "internal/transport", "internal/apply", "internal/grpcapi", "internal/clientport"},
		notImports: []string{"go.etcd.io/raft/v3/...", "google.golang.org/grpc/..."},
		why:        "the multi-version store knows neither Raft nor gRPC",
	},
	{
		pkg:        "internal/watch",
		notDeps:    []string{"internal/server", "internal/raftnode", "internal/raftlog", "internal/apply", "internal/grpcapi", "internal/transport", "internal/clientport"},
		notImports: []string{"go.etcd.io/raft/v3/...", "google.golang.org/grpc/..."},
		why:        "the watch hub reads the store and knows neither the server, Raft nor gRPC (cmd wires it to both)",
	},
	{
		pkg:     "internal/tlsconf",
		notDeps: []string{"internal/grpcapi", "internal/server", "internal/clientport"},
		why:     "TLS settings and listeners; serving the client port is clientport's",
	},
	{
		pkg:     "internal/clientport",
		notDeps: []string{"internal/grpcapi", "internal/server"},
		why:     "the client port serves the gRPC server and HTTP handler it is given",
	},
}

// deterministic lists the packages that must not start goroutines.
var deterministic = []string{"internal/apply", "internal/auth"}

func TestImportDirection(t *testing.T) {
	for _, v := range violations(loadModule(t)) {
		t.Error(v)
	}
}

// violations returns one message per broken rule, for each package it applies to.
func violations(mod *module) []string {
	var out []string
	for _, r := range rules {
		pkgs := mod.under(r.pkg)
		if len(pkgs) == 0 {
			out = append(out, fmt.Sprintf("rule for %s: no such package (renamed? update the rule)", r.pkg))
			continue
		}
		for _, p := range pkgs {
			for _, imp := range mod.imports[p] {
				rel, isOurs := mod.rel(imp)
				switch {
				case isOurs && r.ours != nil && !matchAny(rel, r.ours) && !within(rel, r.pkg):
					out = append(out, fmt.Sprintf("%s imports %s; of this module it may import only %v: %s", p, rel, r.ours, r.why))
				case !isOurs && matchAny(imp, r.notImports):
					out = append(out, fmt.Sprintf("%s imports %s: %s", p, imp, r.why))
				}
			}
			for _, dep := range mod.deps(p) {
				if matchAny(dep, r.notDeps) {
					out = append(out, fmt.Sprintf("%s depends on %s (%s): %s", p, dep, strings.Join(mod.chain(p, dep), " → "), r.why))
				}
			}
		}
	}
	return out
}

func TestDeterministicPackagesStartNoGoroutines(t *testing.T) {
	mod := loadModule(t)
	for _, pkg := range deterministic {
		files := mod.files[pkg]
		if len(files) == 0 {
			t.Errorf("%s: no such package", pkg)
		}
		for _, f := range files {
			fset := token.NewFileSet()
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(af, func(n ast.Node) bool {
				if g, ok := n.(*ast.GoStmt); ok {
					t.Errorf("%s: go statement: %s must stay deterministic", fset.Position(g.Pos()), pkg)
				}
				return true
			})
		}
	}
}

// module is the import graph of this module's non-test files.
type module struct {
	path    string              // the module path (go.mod)
	imports map[string][]string // package (relative) → import paths (full), sorted
	files   map[string][]string // package (relative) → its non-test files
}

// loadModule reads go.mod and every package directory of the module (skipping hidden
// directories and testdata).
func loadModule(t *testing.T) *module {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	m := &module{path: modulePath(t, filepath.Join(root, "go.mod")), imports: map[string][]string{}, files: map[string][]string{}}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		m.files[rel] = append(m.files[rel], path)
		for _, s := range f.Imports {
			imp, _ := strconv.Unquote(s.Path.Value)
			if !slices.Contains(m.imports[rel], imp) {
				m.imports[rel] = append(m.imports[rel], imp)
			}
		}
		if m.imports[rel] == nil {
			m.imports[rel] = []string{}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, imps := range m.imports {
		sort.Strings(imps)
	}
	return m
}

func modulePath(t *testing.T, gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(p), `"`)
		}
	}
	t.Fatalf("%s has no module line", gomod)
	return ""
}

// rel returns imp relative to the module and whether it is one of the module's.
func (m *module) rel(imp string) (string, bool) {
	if r, ok := strings.CutPrefix(imp, m.path+"/"); ok {
		return r, true
	}
	return imp, false
}

// under returns pkg and the module's packages below it.
func (m *module) under(pkg string) []string {
	var out []string
	for p := range m.imports {
		if within(p, pkg) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// ours returns the module packages p imports directly (relative paths).
func (m *module) ours(p string) []string {
	var out []string
	for _, imp := range m.imports[p] {
		if r, ok := m.rel(imp); ok {
			out = append(out, r)
		}
	}
	return out
}

// deps returns every module package p depends on, directly or not.
func (m *module) deps(p string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(q string) {
		for _, d := range m.ours(q) {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(p)
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// chain returns one chain of imports from p to dep, for the error message.
func (m *module) chain(p, dep string) []string {
	prev := map[string]string{p: ""}
	queue := []string{p}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		if q == dep {
			var chain []string
			for ; q != ""; q = prev[q] {
				chain = append([]string{q}, chain...)
			}
			return chain
		}
		for _, d := range m.ours(q) {
			if _, ok := prev[d]; !ok {
				prev[d] = q
				queue = append(queue, d)
			}
		}
	}
	return []string{p, "?", dep}
}

// within reports whether p is pkg or below it.
func within(p, pkg string) bool { return p == pkg || strings.HasPrefix(p, pkg+"/") }

// matchAny reports whether p matches one of patterns ("x" exactly, "x/..." x or below).
func matchAny(p string, patterns []string) bool {
	for _, pat := range patterns {
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if within(p, base) {
				return true
			}
		} else if p == pat {
			return true
		}
	}
	return false
}

// TestRulesCatchViolations runs the rules on a made-up module that breaks some of
// them, so that a rule matching nothing cannot pass for one that is kept.
func TestRulesCatchViolations(t *testing.T) {
	ours := func(ps ...string) []string {
		for i, p := range ps {
			ps[i] = "example.com/m/" + p
		}
		return ps
	}
	m := &module{path: "example.com/m", imports: map[string][]string{
		"internal/grpcapi":        ours("internal/server", "internal/mvcc"),
		"internal/server":         ours("internal/apply", "internal/raftnode"),
		"internal/raftnode":       ours("internal/raftlog"),
		"internal/raftlog":        {"errors"},
		"internal/apply":          append(ours("internal/mvcc"), "math", "math/rand/v2", "net/http", "sync"),
		"internal/mvcc":           append(ours("internal/storage"), "google.golang.org/grpc/status"),
		"internal/storage":        {"bytes"},
		"internal/storage/pebble": ours("internal/storage", "internal/membership"),
		"internal/membership":     {},
		"internal/tlsconf":        ours("internal/clientport"),
		"internal/clientport":     ours("internal/grpcapi"),
		"internal/lease":          append(ours("internal/storage"), "time"),
		"internal/auth":           ours("internal/storage"),
		"internal/lessor":         append(ours("internal/lease"), "time"),
		"internal/lockelect":      {"go.etcd.io/etcd/client/v3"},
		"internal/watch":          append(ours("internal/mvcc"), "google.golang.org/grpc"),
	}}
	for i := range m.imports {
		sort.Strings(m.imports[i])
	}
	got := violations(m)
	for _, want := range []string{
		"internal/grpcapi imports internal/mvcc;",
		"internal/apply imports math/rand/v2:",
		"internal/apply imports net/http:",
		"internal/lease imports time:",
		"internal/mvcc imports google.golang.org/grpc/status:",
		"internal/storage/pebble imports internal/membership;",
		"internal/tlsconf depends on internal/grpcapi (internal/tlsconf → internal/clientport → internal/grpcapi):",
		"internal/clientport depends on internal/server (internal/clientport → internal/grpcapi → internal/server):",
		"internal/watch imports google.golang.org/grpc:",
	} {
		if !slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, want) }) {
			t.Errorf("missing violation %q", want)
		}
	}
	if len(got) != 12 { // the nine above; tlsconf also reaches clientport and server, clientport grpcapi
		t.Errorf("%d violations, want 12:\n%s", len(got), strings.Join(got, "\n"))
	}
	if matchAny("math", []string{"math/rand/..."}) || matchAny("internal/storagex", []string{"internal/storage/..."}) {
		t.Error("a pattern matches only its path and the paths below it")
	}
}
