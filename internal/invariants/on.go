//go:build invariants || race

package invariants

// Enabled is true: this build has the "invariants" or "race" tag.
const Enabled = true
