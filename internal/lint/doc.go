// Package lint holds the house rules that the compiler does not check, as tests
// (lint_test.go): which packages of this module may import which, and that the state
// machine stays deterministic; and (modules_test.go) that no file of the module imports
// etcd's server module. It has no code of its own; `go test ./internal/lint`
// runs the rules, reading the sources with go/parser (no build, no network).
package lint
