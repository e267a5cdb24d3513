package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
)

// restoreFlags are etcdutl snapshot restore's flags that MetaStore takes.
type restoreFlags struct {
	dataDir, walDir, name       string
	initialCluster, token, urls string
	skipHash                    bool
	bumpRevision                uint64
	markCompacted               bool
}

func snapshotRestoreCommand() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR --name NAME --initial-cluster … --initial-advertise-peer-urls …",
		Short: "Makes the data dir of one member of a NEW cluster from a snapshot file",
		Long: "As `etcdutl snapshot restore`: writes a new data dir holding the snapshot's keys,\n" +
			"revisions, leases and compaction, in a cluster of its own: the cluster and member IDs\n" +
			"are derived from --initial-cluster and --initial-cluster-token, not taken from the\n" +
			"snapshot, and the raft log starts anew (the member list is built from its bootstrap\n" +
			"entries at the first start). Run it once per member with the same file, cluster and\n" +
			"token, then start every member with its --data-dir (the --initial-cluster flags are\n" +
			"then ignored, as for any existing data dir).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return restoreSnapshot(args[0], f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "path to the new data dir (default: <name>.metastore)")
	fl.StringVar(&f.walDir, "wal-dir", "", "path to the raft WAL directory (default: inside --data-dir)")
	fl.StringVar(&f.name, "name", config.DefaultName, "this member's name")
	fl.StringVar(&f.initialCluster, "initial-cluster", "", "the new cluster: name=peer-url,… (default: <name>=<initial-advertise-peer-urls>)")
	fl.StringVar(&f.token, "initial-cluster-token", config.DefaultInitialClusterToken, "the new cluster's token")
	fl.StringVar(&f.urls, "initial-advertise-peer-urls", config.DefaultAdvertisePeerURLs, "this member's peer URLs")
	fl.BoolVar(&f.skipHash, "skip-hash-check", false, "do not check the sha256 digest (needed for a file copied from a data dir's snap/)")
	fl.Uint64Var(&f.bumpRevision, "bump-revision", 0, "How much to increase the latest revision after restore")
	fl.BoolVar(&f.markCompacted, "mark-compacted", false, "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)")
	return cmd
}

// restoreConfig parses the flags as the server would parse them, so the IDs derived
// are the ones a server bootstrapped with the same flags derives.
func restoreConfig(f restoreFlags) (*config.Config, error) {
	args := []string{"--name", f.name, "--initial-cluster-token", f.token, "--initial-advertise-peer-urls", f.urls,
		"--initial-cluster-state", config.ClusterStateNew}
	if f.initialCluster != "" {
		args = append(args, "--initial-cluster", f.initialCluster)
	} else {
		args = append(args, "--initial-cluster", f.name+"="+f.urls)
	}
	if f.dataDir != "" {
		args = append(args, "--data-dir", f.dataDir)
	}
	if f.walDir != "" {
		args = append(args, "--wal-dir", f.walDir)
	}
	cfg, _, err := config.Parse(args, nil)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// restoreSnapshot writes a new data dir from the snapshot file at path. A data dir (or
// WAL dir) that exists is refused; one this run created is removed if it fails.
func restoreSnapshot(path string, f restoreFlags, out io.Writer) (err error) {
	if (f.bumpRevision > 0) != f.markCompacted {
		// etcdutl's text, for both mistakes.
		return usageError{errors.New("--mark-compacted required if --revision-bump > 0")}
	}
	cfg, err := restoreConfig(f)
	if err != nil {
		return err
	}
	lg := toolLogger()
	defer lg.Sync()
	for _, d := range []string{cfg.DataDir, cfg.WALDir} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(d); err == nil {
			return fmt.Errorf("data-dir %q exists", d)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(cfg.DataDir)
		}
	}()
	eng, err := openToolEngine(filepath.Join(cfg.DataDir, "db"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := eng.Close(); err == nil {
			err = cerr
		}
	}()
	bar := newProgress(out, 0)
	info, err := snap.RestoreBackup(eng, path, snap.BackupOptions{SkipHash: f.skipHash, Progress: bar.set})
	bar.finish()
	if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if f.bumpRevision > 0 {
		if info.Revision, err = bumpRevision(eng, f.bumpRevision); err != nil {
			return fmt.Errorf("bump revision: %w", err)
		}
	}
	// The new cluster's identity, as a first start with these flags would write it.
	cl, selfID, _, err := loadOrBootstrapCluster(cfg, eng, lg, nil)
	if err != nil {
		return err
	}
	lg.Info("restored snapshot",
		zap.String("path", path), zap.String("data-dir", cfg.DataDir), zap.String("name", cfg.Name),
		zap.String("member-id", membership.IDString(selfID)), zap.String("cluster-id", membership.IDString(cl.ID)),
		zap.Int64("revision", info.Revision), zap.Uint64("total-keys", info.TotalKeys), zap.Bool("hash-checked", info.Digest))
	for _, m := range cl.Members {
		lg.Info("added member", zap.String("name", m.Name), zap.String("member-id", membership.IDString(m.ID)),
			zap.Strings("peer-urls", m.PeerURLs))
	}
	return nil
}

// bumpRevision moves the restored store by n revisions and compacts there, as etcdutl's
// --bump-revision with --mark-compacted: the next write gets revision+n+1, and every
// read or watch from a revision the old cluster served (below revision+n) answers
// "compacted", so clients that cached the old cluster's revisions (Kubernetes'
// informers) list again instead of missing what changed after the snapshot. The
// compaction is scheduled (storage.MetaCompactScheduled), which raises the store revision
// (storage.StoreRevision); the member compacts physically once it runs.
func bumpRevision(eng storage.Engine, n uint64) (int64, error) {
	rev, err := storage.StoreRevision(eng)
	if err != nil {
		return 0, err
	}
	if n > uint64(math.MaxInt64-rev) {
		return 0, fmt.Errorf("revision %d + %d overflows", rev, n)
	}
	rev += int64(n)
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.MetaCompactScheduled, storage.PutUint64(uint64(rev))); err != nil {
		return 0, err
	}
	return rev, b.Commit(true)
}
