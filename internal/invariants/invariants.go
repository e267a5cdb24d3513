// Package invariants holds the switch for checks that are too costly, or too drastic,
// for production but must hold in every test: Enabled is true in builds with the
// "invariants" or "race" build tag (CI runs `go test -race ./...`, so every test run
// checks them) and false otherwise, as in Pebble's internal/invariants.
//
// A check guarded by Enabled verifies a contract of the code around it and panics when
// the contract is broken: a violation is a bug in MetaStore, never a condition to
// handle. The package owns nothing else and imports nothing of MetaStore.
package invariants

// Violated panics with msg when the invariants are enabled and does nothing otherwise.
// Call it only on a path that a correct program never takes.
func Violated(msg string) {
	if Enabled {
		panic("invariant violated: " + msg)
	}
}
