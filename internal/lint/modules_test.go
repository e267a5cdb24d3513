package lint

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenModules are modules that no file of this module may import, tests included,
// with why. etcd's server is what MetaStore replaces: the protos it serves that etcd
// keeps in the server module (v3lock, v3election) are generated here
// (internal/lockelect/v3lockpb, v3electionpb); go.etcd.io/etcd/api/v3 and client/v3
// are fine. The nested modules (tests/conformance, tests/robustness, bench/compare)
// have their own go.mod and may run etcd itself; they are not read.
var forbiddenModules = []struct{ path, why string }{
	{"go.etcd.io/etcd/server/v3", "the server is ours: use go.etcd.io/etcd/api/v3, client/v3 or our own generated protos"},
}

func TestNoForbiddenModule(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := forbiddenImports(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range got {
		t.Error(v)
	}
}

// forbiddenImports returns one message per import of a forbidden module by a .go file
// under root (test files included, nested modules and testdata skipped) and per
// mention of one in root's go.mod.
func forbiddenImports(root string) ([]string, error) {
	var out []string
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(gomod), "\n") {
		for _, m := range forbiddenModules {
			if fields := strings.Fields(line); len(fields) > 0 && (fields[0] == m.path || len(fields) > 1 && fields[1] == m.path) {
				out = append(out, "go.mod requires "+m.path+": "+m.why)
			}
		}
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, s := range f.Imports {
			imp, _ := strconv.Unquote(s.Path.Value)
			for _, m := range forbiddenModules {
				if matchAny(imp, []string{m.path + "/..."}) {
					out = append(out, filepath.ToSlash(rel)+" imports "+imp+": "+m.why)
				}
			}
		}
		return nil
	})
	return out, err
}

// TestForbiddenImportsCatchesViolations runs the check on a made-up module that
// imports etcd's server from a product file and a test, and requires it in go.mod.
func TestForbiddenImportsCatchesViolations(t *testing.T) {
	root := t.TempDir()
	write := func(rel, text string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\nrequire (\n\tgo.etcd.io/etcd/api/v3 v3.7.3\n\tgo.etcd.io/etcd/server/v3 v3.7.3\n)\n")
	write("internal/a/a.go", "package a\n\nimport _ \"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb\"\n")
	write("internal/a/a_test.go", "package a\n\nimport _ \"go.etcd.io/etcd/server/v3/embed\"\n")
	write("internal/b/b.go", "package b\n\nimport _ \"go.etcd.io/etcd/api/v3/etcdserverpb\"\n\nimport _ \"go.etcd.io/etcd/server/v3x\"\n")
	write("tests/other/go.mod", "module example.com/other\n\nrequire go.etcd.io/etcd/server/v3 v3.7.3\n")
	write("tests/other/o.go", "package o\n\nimport _ \"go.etcd.io/etcd/server/v3\"\n")
	got, err := forbiddenImports(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"go.mod requires go.etcd.io/etcd/server/v3:", "internal/a/a.go imports", "internal/a/a_test.go imports"}
	if len(got) != len(want) {
		t.Fatalf("%d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("violation %d = %q, want prefix %q", i, got[i], w)
		}
	}
}
