package robustness

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NetFault is the state of one member's peer network.
type NetFault struct {
	Blackhole bool          // drop every byte to and from the member
	Delay     time.Duration // add this much (plus up to as much jitter) per chunk
	Drop      float64       // probability that a chunk is dropped (its connection is then cut)
}

// Network owns the TCP proxies in front of every member's peer port and the
// faults applied to them. A fault on member i affects every connection that
// either ends at member i (through i's proxy) or was dialled by member i
// (through another member's proxy). The dialler of a connection is found by
// looking up the source socket's inode in /proc (Linux only), so isolation
// does not depend on the peer protocol: etcd's rafthttp and MetaStore's peer
// transport are treated alike. A connection whose dialler is not found is
// attributed to no member.
type Network struct {
	mu      sync.Mutex
	faults  map[int]NetFault
	conns   map[*proxyConn]struct{}
	pids    func() map[int]int // member index -> pid
	proxies []*proxy
}

type proxy struct {
	member int
	ln     net.Listener
	target string
}

type proxyConn struct {
	origin, target int
	a, b           net.Conn
	dirty          bool // bytes were dropped: the stream is corrupt, cut it on heal
	closeOnce      sync.Once
}

func (c *proxyConn) close() {
	c.closeOnce.Do(func() { c.a.Close(); c.b.Close() })
}

// NewNetwork returns a network without proxies; pids maps member index to the
// process id of its current process.
func NewNetwork(pids func() map[int]int) *Network {
	return &Network{faults: map[int]NetFault{}, conns: map[*proxyConn]struct{}{}, pids: pids}
}

// Listen starts member's proxy on listenAddr forwarding to target.
func (n *Network) Listen(member int, listenAddr, target string) error {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return fmt.Errorf("robustness: peer proxy: %w", err)
	}
	p := &proxy{member: member, ln: ln, target: target}
	n.mu.Lock()
	n.proxies = append(n.proxies, p)
	n.mu.Unlock()
	go n.serve(p)
	return nil
}

// Close stops every proxy and cuts every connection.
func (n *Network) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.proxies {
		p.ln.Close()
	}
	for c := range n.conns {
		c.close()
	}
}

// Connections describes the open proxied connections as "origin->target"
// counts; origin -1 is a dialler that was not identified.
func (n *Network) Connections() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]int{}
	for c := range n.conns {
		out[fmt.Sprintf("%d->%d", c.origin, c.target)]++
	}
	return out
}

// Set applies fault f to member's peer traffic.
func (n *Network) Set(member int, f NetFault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults[member] = f
}

// Heal removes member's fault and cuts the connections that lost bytes, so
// both sides reconnect with clean streams.
func (n *Network) Heal(member int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.faults, member)
	for c := range n.conns {
		if c.dirty && (c.origin == member || c.target == member) {
			c.close()
		}
	}
}

func (n *Network) fault(c *proxyConn) NetFault {
	n.mu.Lock()
	defer n.mu.Unlock()
	f, ok := n.faults[c.target]
	if !ok {
		f = n.faults[c.origin]
	}
	return f
}

func (n *Network) serve(p *proxy) {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			b, err := net.DialTimeout("tcp", p.target, 2*time.Second)
			if err != nil {
				a.Close()
				return
			}
			c := &proxyConn{origin: n.origin(a, p.ln.Addr()), target: p.member, a: a, b: b}
			n.mu.Lock()
			n.conns[c] = struct{}{}
			n.mu.Unlock()
			done := make(chan struct{}, 2)
			go func() { n.pipe(c, b, a); done <- struct{}{} }()
			go func() { n.pipe(c, a, b); done <- struct{}{} }()
			<-done
			c.close()
			<-done
			n.mu.Lock()
			delete(n.conns, c)
			n.mu.Unlock()
		}()
	}
}

func (n *Network) pipe(c *proxyConn, dst io.Writer, src io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			f := n.fault(c)
			switch {
			case f.Blackhole:
				n.mu.Lock()
				c.dirty = true
				n.mu.Unlock()
				continue
			case f.Drop > 0 && rand.Float64() < f.Drop:
				return
			case f.Delay > 0:
				time.Sleep(f.Delay + rand.N(f.Delay+1))
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// origin finds which member process dialled conn: the process holding the
// socket whose local address is conn's remote address.
func (n *Network) origin(conn net.Conn, proxyAddr net.Addr) int {
	remote, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return -1
	}
	local := proxyAddr.(*net.TCPAddr).Port
	for attempt := 0; attempt < 3; attempt++ {
		inode := socketInode(remote.Port, local)
		if inode != "" {
			target := "socket:[" + inode + "]"
			for member, pid := range n.pids() {
				if processHolds(pid, target) {
					return member
				}
			}
			return -1
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// socketInode returns the inode of the TCP socket with local port lport and
// remote port rport, from /proc/net/tcp and tcp6.
func socketInode(lport, rport int) string {
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[0] == "sl" {
				continue
			}
			if portOf(fields[1]) == lport && portOf(fields[2]) == rport {
				f.Close()
				return fields[9]
			}
		}
		f.Close()
	}
	return ""
}

func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 32)
	if err != nil {
		return -1
	}
	return int(p)
}

func processHolds(pid int, target string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == target {
			return true
		}
	}
	return false
}
