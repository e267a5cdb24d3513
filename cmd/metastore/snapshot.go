package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/snap"
)

func snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot <subcommand>",
		Short: "Saves, inspects and restores snapshots of a MetaStore store",
	}
	cmd.AddCommand(snapshotSaveCommand(), snapshotStatusCommand(), snapshotRestoreCommand())
	return cmd
}

func snapshotSaveCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "save ENDPOINT FILE",
		Short: "Streams a point-in-time snapshot of the member at ENDPOINT into FILE",
		Long: "Streams the Maintenance Snapshot of one member (its state at the moment it was asked)\n" +
			"into FILE.part, checks its sha256 digest and its format, then renames it to FILE.\n" +
			"`etcdctl snapshot save` writes the same file.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return saveSnapshot(ctx, args[0], args[1], cmd.OutOrStdout())
		},
	}
	cmd.Flags().DurationVar(&timeout, "command-timeout", 0, "give up after this long (0: never)")
	return cmd
}

// saveSnapshot streams the snapshot of endpoint into path (through path.part, removed
// on any failure) and prints what it saved.
func saveSnapshot(ctx context.Context, endpoint, path string, out io.Writer) (err error) {
	lg := toolLogger()
	defer lg.Sync()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(part)
		}
	}()
	start := time.Now()
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return fmt.Errorf("snapshot stream from %s: %w", endpoint, err)
	}
	defer resp.Snapshot.Close()
	bar := newProgress(out, 0)
	n, err := io.Copy(f, &countingReader{r: resp.Snapshot, fn: func(n int64) { bar.set(n, 0) }})
	bar.finish()
	if err != nil {
		return fmt.Errorf("could not write snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	info, err := snap.ReadBackup(part, snap.BackupOptions{}, nil)
	if err != nil {
		return fmt.Errorf("the snapshot received is not valid: %w", err)
	}
	if err := os.Rename(part, path); err != nil {
		return err
	}
	took := time.Since(start)
	lg.Info("saved", zap.String("path", path), zap.Int64("bytes", n), zap.Duration("took", took),
		zap.Int64("revision", info.Revision), zap.String("server-version", resp.Version))
	fmt.Fprintf(out, "Snapshot saved at %s\n", path)
	fmt.Fprintf(out, "Server version %s\n", resp.Version)
	return nil
}

type countingReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.fn(c.n)
	return n, err
}

func snapshotStatusCommand() *cobra.Command {
	var format string
	var skipHash bool
	cmd := &cobra.Command{
		Use:   "status FILE",
		Short: "Prints the hash, revision, number of keys and size of a snapshot file",
		Long: "Reads FILE to its end, checking its sha256 digest and format, and prints its hash\n" +
			"(the stream's CRC-32C), the store revision, the number of engine keys, its size\n" +
			"and the cluster version it recorded, in etcdutl's formats (simple, table, json).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := snap.ReadBackup(args[0], snap.BackupOptions{SkipHash: skipHash}, nil)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), format, info)
		},
	}
	cmd.Flags().StringVarP(&format, "write-out", "w", "simple", "output format (simple, table or json)")
	cmd.Flags().BoolVar(&skipHash, "skip-hash-check", false, "do not check the sha256 digest (a file without one)")
	return cmd
}

// statusJSON is etcdutl's snapshot.Status, with its JSON names.
type statusJSON struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  uint64 `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

func printStatus(out io.Writer, format string, info *snap.BackupInfo) error {
	row := []string{fmt.Sprintf("%x", info.Hash), fmt.Sprint(info.Revision), fmt.Sprint(info.TotalKeys),
		siBytes(uint64(info.Size)), info.Version}
	switch format {
	case "simple":
		fmt.Fprintln(out, strings.Join(row, ", "))
	case "json":
		b, err := json.Marshal(statusJSON{info.Hash, info.Revision, info.TotalKeys, info.Size, info.Version})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
	case "table":
		writeTable(out, []string{"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"}, row)
	default:
		return usageError{fmt.Errorf("%s not supported as output format", format)}
	}
	return nil
}

// writeTable draws one header row and one row in etcdutl's table style.
func writeTable(out io.Writer, hdr, row []string) {
	widths := make([]int, len(hdr))
	for i := range hdr {
		widths[i] = max(len(hdr[i]), len(row[i]))
	}
	line := func() {
		for _, w := range widths {
			fmt.Fprint(out, "+", strings.Repeat("-", w+2))
		}
		fmt.Fprintln(out, "+")
	}
	cells := func(cs []string, center bool) {
		for i, c := range cs {
			pad := widths[i] - len(c)
			left := pad // numbers and sizes right-aligned, as tablewriter does
			if center {
				left = pad / 2
			}
			fmt.Fprint(out, "| ", strings.Repeat(" ", left), c, strings.Repeat(" ", pad-left), " ")
		}
		fmt.Fprintln(out, "|")
	}
	line()
	cells(hdr, true)
	line()
	cells(row, false)
	line()
}

// siBytes formats n as go-humanize's Bytes does (SI units: "25 kB", "1.2 MB").
func siBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	v, i := float64(n), 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if v < 10 && i > 0 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
