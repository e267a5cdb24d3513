package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckDataDir refuses a data directory in etcd's own layout (<dir>/member/snap/db, the
// bbolt backend, or <dir>/member/wal): metastore cannot read it, and writing next to it
// would leave the operator with two diverging stores. An absent or empty directory, or one
// written by metastore, is fine.
func CheckDataDir(dir string) error {
	for _, p := range []string{filepath.Join(dir, "member", "snap", "db"), filepath.Join(dir, "member", "wal")} {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %s exists; metastore cannot open a data directory written by etcd, "+
				"point --data-dir at a new directory", ErrEtcdDataDir, p)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return fmt.Errorf("config: checking data dir %s: %w", dir, err)
		}
	}
	return nil
}
