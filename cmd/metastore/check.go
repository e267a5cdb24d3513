package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
)

func checkCommand() *cobra.Command {
	var dataDir, walDir string
	cmd := &cobra.Command{
		Use:   "check --data-dir DIR",
		Short: "Verifies the data dir of a stopped member",
		Long: "Opens the data dir as the server would, without serving: the engine opens and holds\n" +
			"no interrupted snapshot install nor an older build's layout; every WAL record is read\n" +
			"and its checksum checked, as is every log entry the state machine has not applied;\n" +
			"the applied index lies between the log's snapshot and its last entry. Run it on a\n" +
			"stopped member only: like a start, it cuts a torn last record off the WAL.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usageError{errors.New("--data-dir is required")}
			}
			return checkDataDir(dataDir, walDir, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the member's data dir")
	cmd.Flags().StringVar(&walDir, "wal-dir", "", "the member's WAL dir (default: inside --data-dir)")
	return cmd
}

// checkDataDir verifies dataDir and prints what it found; the error names the first
// problem.
func checkDataDir(dataDir, walDir string, out io.Writer) error {
	if _, err := os.Stat(filepath.Join(dataDir, "db")); err != nil {
		return fmt.Errorf("no engine in %s: %w", dataDir, err)
	}
	if err := config.CheckDataDir(dataDir); err != nil {
		return err
	}
	if walDir == "" {
		walDir = filepath.Join(dataDir, "wal")
	}
	eng, err := openToolEngine(filepath.Join(dataDir, "db"))
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer eng.Close()
	if err := storage.CheckLayout(eng); err != nil {
		return err
	}
	if p, err := snap.InstallPending(eng); err != nil || p != "" {
		if err == nil {
			err = fmt.Errorf("the install of snapshot %s was interrupted (a start finishes it)", p)
		}
		return err
	}
	es := eng.NewSnapshot()
	defer es.Close()
	rev, err := storage.StoreRevision(es)
	if err != nil {
		return fmt.Errorf("revision log: %w", err)
	}
	var applied, appliedTerm uint64
	md, err := snap.ReadMeta(es)
	switch {
	case errors.Is(err, snap.ErrNoState):
	case err != nil:
		return fmt.Errorf("state machine metadata: %w", err)
	default:
		applied, appliedTerm = md.GetIndex(), md.GetTerm()
	}
	rlog, err := raftlog.Open(eng, raftlog.Options{Dir: walDir, Logger: zap.NewNop(), SnapDir: filepath.Join(dataDir, "snap")})
	if err != nil {
		return fmt.Errorf("WAL: %w", err)
	}
	defer rlog.Close()
	first, _ := rlog.FirstIndex()
	last, _ := rlog.LastIndex()
	lsnap, _ := rlog.SnapshotFile()
	hs := rlog.HardState()
	fmt.Fprintf(out, "engine: revision %d, applied index %d (term %d)\n", rev, applied, appliedTerm)
	fmt.Fprintf(out, "WAL: entries [%d, %d], snapshot index %d, commit %d, term %d\n",
		first, last, lsnap.GetIndex(), hs.GetCommit(), hs.GetTerm())
	// The log is cut only below a snapshot the engine was synced at, so the engine has
	// applied at least up to the log's start; it never applies past the log's end.
	if applied+1 < first {
		return fmt.Errorf("the engine applied up to %d but the WAL starts at %d: entries %d to %d are lost",
			applied, first, applied+1, first-1)
	}
	if applied > last {
		return fmt.Errorf("the engine applied up to %d, past the WAL's last entry %d", applied, last)
	}
	if applied > 0 && applied >= first-1 {
		if t, err := rlog.Term(applied); err == nil && t != appliedTerm {
			return fmt.Errorf("the engine applied index %d at term %d, the WAL has it at term %d", applied, appliedTerm, t)
		}
	}
	// Read what is still to apply: every entry's record checksum is checked.
	for lo := max(applied+1, first); lo <= last; {
		ents, err := rlog.Entries(lo, last+1, 64<<20)
		if err != nil {
			return fmt.Errorf("WAL entries from %d: %w", lo, err)
		}
		if len(ents) == 0 {
			return fmt.Errorf("WAL entries from %d: none read", lo)
		}
		lo += uint64(len(ents))
	}
	fmt.Fprintln(out, "OK")
	return nil
}
