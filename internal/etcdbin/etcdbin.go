// Package etcdbin finds real etcd v3.7.3 binaries (etcd, etcdctl, etcdutl) for tests that
// compare MetaStore with etcd. It is used by tests only.
package etcdbin

import (
	"os"
	"path/filepath"
	"runtime"
)

// Path returns the path of the named etcd binary ("etcd", "etcdctl" or "etcdutl"), or ""
// when there is none. It looks at $ETCD_BIN_DIR, then at the directory of $ETCD_BIN, then
// at .etcd-bin at the repository root (where `scripts/build-etcd.sh` puts them; `make test`
// builds them there).
func Path(name string) string {
	var dirs []string
	if d := os.Getenv("ETCD_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if b := os.Getenv("ETCD_BIN"); b != "" {
		dirs = append(dirs, filepath.Dir(b))
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		dirs = append(dirs, filepath.Join(filepath.Dir(file), "..", "..", ".etcd-bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}
