package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrCluster prefixes failures to start or control member processes.
var ErrCluster = errors.New("robustness: cluster")

// ClusterConfig describes a cluster of real server processes on loopback.
type ClusterConfig struct {
	Bin        string   // etcd-compatible server binary
	Size       int      // 1 or 3
	Dir        string   // data directories and logs go here
	ExtraFlags []string // appended to every member's command line
}

// Member is one server process and its ports.
type Member struct {
	Index     int
	Name      string
	ClientURL string
	PeerAddr  string // where the member listens for peers
	ProxyAddr string // what the other members are told: the proxy in front of PeerAddr
	DataDir   string
	LogPath   string
	ID        uint64

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Cluster is a set of members started from one binary, each member's peer
// traffic passing through the Network's proxies.
type Cluster struct {
	cfg     ClusterConfig
	Members []*Member
	Net     *Network
}

// freePort picks a free port below the kernel's ephemeral range (32768 and
// up on Linux), so the many outgoing client connections of a run cannot take
// it between the check and the member's bind.
func freePort() (int, error) {
	for attempt := 0; attempt < 100; attempt++ {
		port := 15000 + rand.IntN(17000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// StartCluster starts every member and waits until the cluster serves
// linearizable reads.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{cfg: cfg}
	c.Net = NewNetwork(c.pids)
	for i := 0; i < cfg.Size; i++ {
		var ports [3]int
		for j := range ports {
			p, err := freePort()
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("%w: %v", ErrCluster, err)
			}
			ports[j] = p
		}
		m := &Member{
			Index: i, Name: fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
			PeerAddr:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
			ProxyAddr: fmt.Sprintf("127.0.0.1:%d", ports[2]),
			DataDir:   filepath.Join(cfg.Dir, fmt.Sprintf("m%d.data", i)),
			LogPath:   filepath.Join(cfg.Dir, fmt.Sprintf("m%d.log", i)),
		}
		if err := c.Net.Listen(i, m.ProxyAddr, m.PeerAddr); err != nil {
			c.Close()
			return nil, err
		}
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		if err := c.start(m, "new", c.initialCluster()); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, m := range c.Members {
		if err := c.WaitReady(ctx, m); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.loadIDs(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) initialCluster() string {
	var parts []string
	for _, m := range c.Members {
		parts = append(parts, fmt.Sprintf("%s=http://%s", m.Name, m.ProxyAddr))
	}
	return strings.Join(parts, ",")
}

func (c *Cluster) start(m *Member, state, initialCluster string) error {
	args := []string{
		"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", "http://" + m.PeerAddr,
		"--initial-advertise-peer-urls", "http://" + m.ProxyAddr,
		"--initial-cluster", initialCluster, "--initial-cluster-state", state,
		"--initial-cluster-token", "robustness",
		"--heartbeat-interval", "50", "--election-timeout", "500",
	}
	args = append(args, c.cfg.ExtraFlags...)
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCluster, err)
	}
	fmt.Fprintf(logf, "=== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), c.cfg.Bin, strings.Join(args, " "))
	cmd := exec.Command(c.cfg.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%w: start %s: %v", ErrCluster, m.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	return nil
}

func (c *Cluster) pids() map[int]int {
	out := map[int]int{}
	for _, m := range c.Members {
		m.mu.Lock()
		if m.cmd != nil && m.cmd.Process != nil {
			out[m.Index] = m.cmd.Process.Pid
		}
		m.mu.Unlock()
	}
	return out
}

// Endpoints lists every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Client returns a client of the given endpoints (all members if none).
func (c *Cluster) Client(endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 2 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second,
		Logger: zap.NewNop(),
	})
}

// WaitReady waits until m answers a linearizable read.
func (c *Cluster) WaitReady(ctx context.Context, m *Member) error {
	cli, err := c.Client(m.ClientURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCluster, err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "/robustness-ready")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("%w: %s exited during start, see %s", ErrCluster, m.Name, m.LogPath)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: %s not ready: %v (log %s)", ErrCluster, m.Name, err, m.LogPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) loadIDs(ctx context.Context) error {
	cli, err := c.Client()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCluster, err)
	}
	defer cli.Close()
	for _, m := range c.Members {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(rctx, m.ClientURL)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: status of %s: %v", ErrCluster, m.Name, err)
		}
		m.ID = st.Header.MemberId
	}
	return nil
}

// Leader returns the member that the members agree leads, or an error.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	cli, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	for attempt := 0; attempt < 50; attempt++ {
		for _, m := range c.Members {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := cli.Status(rctx, m.ClientURL)
			cancel()
			if err != nil || st.Leader == 0 {
				continue
			}
			for _, l := range c.Members {
				if l.ID == st.Leader {
					return l, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("%w: no leader", ErrCluster)
}

// Follower returns a member that is not the leader.
func (c *Cluster) Follower(ctx context.Context) (*Member, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	return c.Members[(l.Index+1)%len(c.Members)], nil
}

// Signal sends sig to m's process.
func (c *Cluster) Signal(m *Member, sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return fmt.Errorf("%w: %s not running", ErrCluster, m.Name)
	}
	return m.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL to m and waits for the process to exit.
func (c *Cluster) Kill(m *Member) error {
	if err := c.Signal(m, syscall.SIGKILL); err != nil {
		return err
	}
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	<-exited
	return nil
}

// Restart starts m again on its data directory and waits until it is ready.
func (c *Cluster) Restart(ctx context.Context, m *Member) error {
	if err := c.start(m, "existing", c.initialCluster()); err != nil {
		return err
	}
	return c.WaitReady(ctx, m)
}

// Replace removes m from the membership, kills it, wipes its data, adds it
// back under a new member ID with the same peer URL and starts it.
func (c *Cluster) Replace(ctx context.Context, m *Member) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	// etcd refuses a removal while it considers a remaining member inactive
	// ("unhealthy cluster"), e.g. shortly after start: retry for a while.
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.MemberRemove(rctx, m.ID)
		cancel()
		if err == nil {
			break
		}
		if attempt == 20 {
			return fmt.Errorf("%w: remove %s: %v", ErrCluster, m.Name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := c.Kill(m); err != nil {
		return err
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("%w: %v", ErrCluster, err)
	}
	var resp *clientv3.MemberAddResponse
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err = cli.MemberAdd(rctx, []string{"http://" + m.ProxyAddr})
		cancel()
		if err == nil {
			break
		}
		// As the removal: a member back from a fault counts as active only after 5 s.
		if attempt == 20 {
			return fmt.Errorf("%w: add %s: %v", ErrCluster, m.Name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	m.ID = resp.Member.ID
	if err := c.start(m, "existing", c.initialCluster()); err != nil {
		return err
	}
	return c.WaitReady(ctx, m)
}

// Close kills every member and stops the proxies.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.mu.Lock()
		cmd, exited := m.cmd, m.exited
		m.mu.Unlock()
		if cmd != nil && cmd.Process != nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-exited
		}
	}
	c.Net.Close()
}
