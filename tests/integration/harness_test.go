// Package integration runs real server processes on loopback and drives them with the
// real go.etcd.io/etcd/client/v3. The same tests run against real etcd v3.7.3 when
// ETCD_BIN names its binary (scripts/build-etcd.sh builds it), so that where etcd's
// behaviour is subtle the test shows both agree.
package integration

import (
	"bufio"
	"context"
	"fmt"
	"github.com/metastore/metastore/internal/etcdbin"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var metastoreBin string

func TestMain(m *testing.M) {
	if p := os.Getenv("METASTORE_BIN"); p != "" {
		// A prebuilt binary (or, to check the tests themselves, real etcd).
		metastoreBin = p
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "metastore-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	metastoreBin = filepath.Join(dir, "metastore")
	args := []string{"build", "-o", metastoreBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../../cmd/metastore")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building metastore:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary is a server binary under test: ours, or real etcd for comparison.
type binary struct {
	name string
	path string
}

// binaries lists ours and, when a real etcd is found (ETCD_BIN, ETCD_BIN_DIR or
// .etcd-bin at the repo root, see internal/etcdbin), etcd.
func binaries() []binary {
	bs := []binary{{"metastore", metastoreBin}}
	if p := etcdbin.Path("etcd"); p != "" {
		bs = append(bs, binary{"etcd", p})
	}
	return bs
}

// forEachBinary runs f as a subtest against each binary.
func forEachBinary(t *testing.T, f func(t *testing.T, b binary)) {
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

type member struct {
	name       string
	dataDir    string
	clientURL  string
	peerURL    string
	args       []string
	cmd        *exec.Cmd
	logPath    string
	exited     chan struct{}
	readyLines chan struct{}
}

type cluster struct {
	t       *testing.T
	bin     binary
	members []*member
}

// freePorts reserves n distinct loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// planMembers adds n members named prefix0… to c, each with free client and peer ports
// and a data dir and log in a temp dir, and returns their --initial-cluster entries.
func (c *cluster) planMembers(prefix string, n int) []string {
	ports := freePorts(c.t, 2*n)
	base := c.t.TempDir()
	var initial []string
	for i := range n {
		m := &member{
			name:      fmt.Sprintf("%s%d", prefix, i),
			dataDir:   filepath.Join(base, fmt.Sprintf("%s%d", prefix, i)),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			logPath:   filepath.Join(base, fmt.Sprintf("%s%d.log", prefix, i)),
		}
		initial = append(initial, m.name+"="+m.peerURL)
		c.members = append(c.members, m)
	}
	return initial
}

// newCluster starts n members of bin and waits until each serves client requests.
func newCluster(t *testing.T, bin binary, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: bin}
	initial := c.planMembers("m", n)
	for _, m := range c.members {
		m.args = append([]string{
			"--name", m.name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", "itest-" + t.Name(),
			"--initial-cluster-state", "new",
		}, extra...)
	}
	t.Cleanup(c.close)
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	return c
}

// start launches member i's process (on its existing data dir, if any).
func (c *cluster) start(i int) {
	c.t.Helper()
	m := c.members[i]
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin.path, m.args...)
	pr, pw := io.Pipe()
	cmd.Stdout = logf
	cmd.Stderr = io.MultiWriter(logf, pw)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	m.readyLines = make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ready to serve client requests") {
				once.Do(func() { close(m.readyLines) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		logf.Close()
		close(m.exited)
	}()
}

func (c *cluster) waitReady(i int) {
	c.t.Helper()
	m := c.members[i]
	select {
	case <-m.readyLines:
	case <-m.exited:
		c.t.Fatalf("%s exited before it was ready; log:\n%s", m.name, c.logTail(i))
	case <-time.After(60 * time.Second):
		c.t.Fatalf("%s not ready after 60s; log:\n%s", m.name, c.logTail(i))
	}
}

func (c *cluster) logTail(i int) string {
	b, _ := os.ReadFile(c.members[i].logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// kill sends SIGKILL to member i and waits for the process to go.
func (c *cluster) kill(i int) { c.signal(i, syscall.SIGKILL) }

// stop sends SIGTERM to member i and waits for a clean exit.
func (c *cluster) stop(i int) { c.signal(i, syscall.SIGTERM) }

func (c *cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	m := c.members[i]
	if m.cmd == nil {
		return
	}
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		c.t.Errorf("%s did not exit within 30s of %v", m.name, sig)
	}
}

// restart starts a stopped member again on its data dir and waits until it serves.
func (c *cluster) restart(i int) {
	c.t.Helper()
	c.start(i)
	c.waitReady(i)
}

func (c *cluster) close() {
	for i := range c.members {
		c.stop(i)
	}
	if c.t.Failed() {
		for i, m := range c.members {
			c.t.Logf("---- log of %s ----\n%s", m.name, c.logTail(i))
		}
	}
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// client returns a clientv3 client of the given members (all when none given).
func (c *cluster) client(members ...int) *clientv3.Client {
	c.t.Helper()
	eps := c.endpoints()
	if len(members) > 0 {
		eps = nil
		for _, i := range members {
			eps = append(eps, c.members[i].clientURL)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
