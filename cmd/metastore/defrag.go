package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/engines"
)

func defragCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "defrag --data-dir DIR",
		Short: "Defragments the data dir of a stopped member",
		Long: "As `etcdutl defrag --data-dir`: compacts the whole engine of a member that is not\n" +
			"running, so the space of deleted, overwritten and compacted data is given back. A\n" +
			"running member holds its engine's lock and is refused: defragment it online with\n" +
			"`etcdctl defrag`, which does not stop it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := defragDataDir(dataDir); err != nil {
				return fmt.Errorf("Failed to defragment etcd data[%s] (%w)", dataDir, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "Required. Defragments a data directory not in use by metastore.")
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

// defragDataDir compacts the engine of the stopped member in dataDir and logs its size
// before and after, as etcdutl does.
func defragDataDir(dataDir string) error {
	dir := filepath.Join(dataDir, "db")
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	if err := config.CheckDataDir(dataDir); err != nil {
		return err
	}
	lg := toolLogger()
	defer lg.Sync()
	eng, err := openToolEngine(dir)
	if err != nil {
		return err
	}
	before, inUse := eng.DiskSize(), storage.StateMachineSize(eng)
	lg.Info("defragmenting", zap.String("path", dir),
		zap.Uint64("current-db-size-bytes", before), zap.Uint64("current-db-size-in-use-bytes", inUse))
	start := time.Now()
	if err := eng.Compact(nil, nil); err != nil {
		eng.Close()
		return err
	}
	inUse = storage.StateMachineSize(eng)
	if err := eng.Close(); err != nil { // the replaced files are gone once it is closed
		return err
	}
	after, err := dirSize(dir)
	if err != nil {
		return err
	}
	lg.Info("finished defragmenting directory", zap.String("path", dir),
		zap.Int64("current-db-size-bytes-diff", int64(after)-int64(before)), zap.Uint64("current-db-size-bytes", after),
		zap.Uint64("current-db-size-in-use-bytes", inUse), zap.Duration("took", time.Since(start)))
	return nil
}

// openToolEngine opens the engine in dir for an offline tool with the engine that made
// it (its marker), so a tool never opens one engine's files with the other; a new dir
// gets Pebble, the default.
func openToolEngine(dir string) (storage.Engine, error) {
	name, err := engines.Recorded(vfs.Default, dir)
	if err != nil {
		return nil, err
	}
	eng, err := engines.Open(dir, engines.Options{Engine: name, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	return eng, nil
}

func dirSize(dir string) (uint64, error) {
	var n uint64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			n += uint64(fi.Size())
		}
		return nil
	})
	return n, err
}
