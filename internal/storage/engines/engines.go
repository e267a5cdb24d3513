// Package engines opens the storage engine a data dir was made with: it owns the choice
// of engine (--storage-engine), its record in the engine's directory (the marker file),
// and the refusals of a directory made by another engine or needing an engine this
// build lacks. It knows nothing of keys; the engines themselves are storage/pebble and
// storage/rocksdb (the latter only in builds with the `rocksdb` tag).
package engines

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// The engines' names, as --storage-engine takes them and the marker records them.
const (
	Pebble  = "pebble"
	RocksDB = "rocksdb"
)

// MarkerFile is the file in the engine's directory that names the engine which made it,
// written (through Options.FS) before the engine first opens the directory.
const MarkerFile = "METASTORE-ENGINE"

// ErrEngineMismatch is returned by Open for a directory made by another engine.
var ErrEngineMismatch = errors.New("storage/engines: the data dir was made by another storage engine")

// ErrEngineUnavailable is returned by Open when the engine asked for, or the one that
// made the directory, is not compiled into this build (RocksDB without the tag).
var ErrEngineUnavailable = errors.New("storage/engines: storage engine not in this build")

// ErrUnknownEngine is returned by Open for a name that is no engine, or a marker that
// names none.
var ErrUnknownEngine = errors.New("storage/engines: unknown storage engine")

// Options configure Open.
type Options struct {
	// Engine is the engine to use: Pebble or RocksDB. Empty: Pebble. It must be the
	// one recorded in an existing directory.
	Engine string
	// Logger, CacheSize and MemTableSize are passed to the engine (0: its defaults).
	Logger       *zap.Logger
	CacheSize    int64
	MemTableSize uint64
	// FS holds the directory and the marker. Nil: the operating system's. Pebble does
	// all its I/O through it; RocksDB only runs on the operating system's (its own Env).
	FS vfs.FS
	// OnCommit, if set, is told the duration of every batch commit (etcd's
	// backend_commit_duration); only Pebble reports it so far.
	OnCommit func(time.Duration)
}

// Open opens the engine in dir, creating dir and recording opts.Engine in it if it is
// new. A directory holding files but no marker was made by a build before the marker:
// it is Pebble's (the only engine of those builds) unless it holds RocksDB's IDENTITY
// file; its engine is recorded then.
func Open(dir string, opts Options) (storage.Engine, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	want := opts.Engine
	if want == "" {
		want = Pebble
	}
	if want != Pebble && want != RocksDB {
		return nil, fmt.Errorf("%w %q (supported: %s, %s)", ErrUnknownEngine, want, Pebble, RocksDB)
	}
	have, err := Recorded(fs, dir)
	if err != nil {
		return nil, err
	}
	if have == RocksDB && !rocksdbBuilt {
		return nil, fmt.Errorf("%w: %s was made by the rocksdb engine, which this binary was built without; "+
			"install librocksdb-dev, build with `go build -tags rocksdb ./cmd/metastore` and start it with --storage-engine rocksdb",
			ErrEngineUnavailable, dir)
	}
	if have != "" && have != want {
		return nil, fmt.Errorf("%w: %s was made by the %s engine and cannot be opened by %s; "+
			"start with --storage-engine %s (the engine is chosen when a data dir is created; to change it, "+
			"start a new member on an empty --data-dir and let it catch up from the cluster)",
			ErrEngineMismatch, dir, have, want, have)
	}
	if want == RocksDB && !rocksdbBuilt {
		return nil, fmt.Errorf("%w: %s needs the rocksdb engine, which this binary was built without; "+
			"install librocksdb-dev and build with `go build -tags rocksdb ./cmd/metastore`", ErrEngineUnavailable, dir)
	}
	if have == "" {
		if err := record(fs, dir, want); err != nil {
			return nil, err
		}
	}
	switch want {
	case RocksDB:
		return openRocksDB(dir, opts)
	default:
		return pebble.Open(dir, pebble.Options{Logger: opts.Logger, CacheSize: opts.CacheSize, OnCommit: opts.OnCommit,
			MemTableSize: opts.MemTableSize, FS: opts.FS})
	}
}

// Recorded returns the engine that made dir: its marker's, else (a directory of a build
// before the marker) RocksDB if it holds RocksDB's IDENTITY file, Pebble if it holds any
// other file. "" means dir is new (missing or empty).
func Recorded(fs vfs.FS, dir string) (string, error) {
	f, err := fs.Open(fs.PathJoin(dir, MarkerFile))
	switch {
	case err == nil:
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 64))
		if err != nil {
			return "", fmt.Errorf("storage/engines: read %s: %w", fs.PathJoin(dir, MarkerFile), err)
		}
		name := strings.TrimSpace(string(b))
		if name != Pebble && name != RocksDB {
			return "", fmt.Errorf("%w %q recorded in %s", ErrUnknownEngine, name, fs.PathJoin(dir, MarkerFile))
		}
		return name, nil
	case !oserrorNotExist(err):
		return "", fmt.Errorf("storage/engines: open %s: %w", fs.PathJoin(dir, MarkerFile), err)
	}
	names, err := fs.List(dir)
	if oserrorNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("storage/engines: list %s: %w", dir, err)
	}
	if len(names) == 0 {
		return "", nil
	}
	for _, n := range names {
		if n == "IDENTITY" {
			return RocksDB, nil
		}
	}
	return Pebble, nil
}

func oserrorNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// record writes the marker durably: file synced, then its directory.
func record(fs vfs.FS, dir, name string) error {
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("storage/engines: create %s: %w", dir, err)
	}
	path := fs.PathJoin(dir, MarkerFile)
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("storage/engines: create %s: %w", path, err)
	}
	_, err = f.Write([]byte(name + "\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var d vfs.File
		if d, err = fs.OpenDir(dir); err == nil {
			err = d.Sync()
			_ = d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("storage/engines: write %s: %w", path, err)
	}
	return nil
}
