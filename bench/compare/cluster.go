package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrNotReady is returned when a cluster does not serve a read in time.
var ErrNotReady = errors.New("compare: cluster not ready")

// system is one server implementation under comparison.
type system struct {
	label string   // as printed in the table, e.g. "etcd" or "metastore"
	bin   string   // server binary accepting etcd's member flags
	extra []string // flags added to every member
}

// member is one server process of a cluster.
type member struct {
	name      string
	dataDir   string
	clientURL string
	peerURL   string
	logPath   string
	cmd       *exec.Cmd
}

// cluster is a set of members of one system on loopback ports, with data under dir.
type cluster struct {
	sys     system
	dir     string
	members []*member
	initial string // --initial-cluster value
}

// newCluster lays out n members of sys under dir (fresh data dirs) on free loopback ports.
func newCluster(sys system, dir string, n int) (*cluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &cluster{sys: sys, dir: dir}
	var initial []string
	for i := range n {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d.data", i)),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp),
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(initial, ",")
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// endpoints are the members' client URLs.
func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// start launches every member (state "new" on the first start, "existing" data after).
func (c *cluster) start() error {
	for _, m := range c.members {
		args := []string{
			"--name", m.name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", c.initial, "--initial-cluster-state", "new",
			"--initial-cluster-token", "compare",
		}
		args = append(args, c.sys.extra...)
		log, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd := exec.Command(c.sys.bin, args...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			log.Close()
			return fmt.Errorf("compare: starting %s: %w", c.sys.bin, err)
		}
		log.Close()
		m.cmd = cmd
	}
	return nil
}

// waitReady polls a linearizable read of key through every endpoint until one succeeds (and,
// if mustExist, finds the key), and returns the time since since.
func (c *cluster) waitReady(ctx context.Context, since time.Time, timeout time.Duration, key string, mustExist bool) (time.Duration, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := cli.Get(rctx, key)
		cancel()
		if err == nil && (!mustExist || len(resp.Kvs) == 1) {
			return time.Since(since), nil
		}
		if err == nil {
			// Served, but without the data: a restart that lost it is a failure, not a start-up.
			return 0, fmt.Errorf("%w: %q missing after restart (see %s)", ErrNotReady, key, c.members[0].logPath)
		}
		for _, m := range c.members {
			if m.cmd != nil && m.cmd.ProcessState != nil {
				return 0, fmt.Errorf("%w: %s exited (see %s)", ErrNotReady, m.name, m.logPath)
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("%w after %v: %v (see %s)", ErrNotReady, timeout, err, c.members[0].logPath)
		}
		time.Sleep(5 * time.Millisecond) // polling for readiness; the poll period bounds the error of the restart figure
	}
}

// stop sends SIGTERM to every member and waits (SIGKILL after 20s).
func (c *cluster) stop() {
	for _, m := range c.members {
		if m.cmd != nil && m.cmd.Process != nil {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, m := range c.members {
		if m.cmd == nil {
			continue
		}
		done := make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = m.cmd.Process.Kill()
			<-done
		}
		m.cmd = nil
	}
}

// rssBytes returns the mean resident set size of the running members, from /proc.
func (c *cluster) rssBytes() (float64, error) {
	var sum float64
	for _, m := range c.members {
		if m.cmd == nil {
			return 0, fmt.Errorf("compare: %s not running", m.name)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
		if err != nil {
			return 0, err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, err := strconv.ParseFloat(f[1], 64)
				if err != nil {
					return 0, err
				}
				sum += kb * 1024
			}
		}
	}
	return sum / float64(len(c.members)), nil
}

// diskBytes returns the mean disk usage of the members' data dirs: allocated blocks, as du
// counts them (preallocated WAL segments included).
func (c *cluster) diskBytes() (float64, error) {
	var sum float64
	for _, m := range c.members {
		err := filepath.WalkDir(m.dataDir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				info, err := d.Info()
				if err != nil {
					return err
				}
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					sum += float64(st.Blocks) * 512
				} else {
					sum += float64(info.Size())
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return sum / float64(len(c.members)), nil
}
