package invariants

import "testing"

// The package's tests run under -race in CI, where the checks must be on.
func TestViolatedPanicsWhenEnabled(t *testing.T) {
	if !Enabled {
		t.Skip("built without the invariants or race tag")
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("Violated did not panic with invariants enabled")
		}
	}()
	Violated("test")
}
