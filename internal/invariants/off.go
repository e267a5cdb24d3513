//go:build !invariants && !race

package invariants

// Enabled is false: this build has neither the "invariants" nor the "race" tag.
const Enabled = false
