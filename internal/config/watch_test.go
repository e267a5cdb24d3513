package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchProgressNotifyInterval: etcd's flag, environment variable and YAML key (a
// time.Duration in nanoseconds there), default 10m, no longer "not implemented".
func TestWatchProgressNotifyInterval(t *testing.T) {
	c, warnings, err := Parse(nil, nil)
	if err != nil || c.WatchProgress != 10*time.Minute {
		t.Fatalf("default: %v, %v", c.WatchProgress, err)
	}
	c, warnings, err = Parse([]string{"--watch-progress-notify-interval=250ms"}, nil)
	if err != nil || c.WatchProgress != 250*time.Millisecond || len(warnings) != 0 {
		t.Fatalf("flag: %v, warnings %v, %v", c.WatchProgress, warnings, err)
	}
	c, _, err = Parse(nil, []string{"ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL=3s"})
	if err != nil || c.WatchProgress != 3*time.Second {
		t.Fatalf("environment: %v, %v", c.WatchProgress, err)
	}
	if _, _, err := Parse([]string{"--watch-progress-notify-interval=soon"}, nil); err == nil {
		t.Fatal("a malformed duration was accepted")
	}
	path := filepath.Join(t.TempDir(), "etcd.yaml")
	if err := os.WriteFile(path, []byte("watch-progress-notify-interval: 2000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err = LoadFile(path)
	if err != nil || c.WatchProgress != 2*time.Second {
		t.Fatalf("YAML: %v, %v", c.WatchProgress, err)
	}
}
