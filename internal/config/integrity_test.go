package config

import (
	"strings"
	"testing"
	"time"
)

// The corruption checks are set as in etcd v3.7.3: two durations and two feature gates.
func TestIntegrityFlags(t *testing.T) {
	c, ws := mustParse(t, []string{"--corrupt-check-time=5s", "--compact-hash-check-time=10s",
		"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true"}, nil)
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
	in, err := c.Integrity()
	want := Integrity{InitialCorruptCheck: true, CorruptCheckTime: 5 * time.Second, CompactHashCheck: true, CompactHashCheckTime: 10 * time.Second}
	if err != nil || in != want {
		t.Errorf("Integrity() = %+v, %v; want %+v", in, err, want)
	}
	c, _ = mustParse(t, nil, nil)
	if in, err := c.Integrity(); err != nil || in != (Integrity{CompactHashCheckTime: time.Minute}) {
		t.Errorf("defaults: %+v, %v", in, err)
	}
	c, _ = mustParse(t, []string{"--compact-hash-check-time=0s"}, nil)
	if _, err := c.Integrity(); err == nil || err.Error() != "--compact-hash-check-time must be >0 (set to 0s)" {
		t.Errorf("zero compact-hash-check-time: %v", err)
	}
	// A gate we do not know still gets the "not implemented" warning.
	_, ws = mustParse(t, []string{"--feature-gates=StopGRPCServiceOnDefrag=true"}, nil)
	if len(ws) != 1 || !strings.Contains(ws[0], "--feature-gates") {
		t.Errorf("unknown gate: %q", ws)
	}
}
