package robustness

import (
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// A fault on member 1 must cut the connections member 1 dials to member 0's
// proxy, not only those that end at member 1: this process plays member 1.
func TestNetworkFaultAppliesToConnectionsTheMemberDials(t *testing.T) {
	n := NewNetwork(func() map[int]int { return map[int]int{1: os.Getpid()} })
	defer n.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := n.Listen(0, addr, echoServer(t)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "ping"); err != nil || got != "ping" {
		t.Fatalf("healthy proxy: got %q, %v", got, err)
	}
	n.Set(1, NetFault{Blackhole: true})
	if got, err := roundTrip(c, "lost"); err == nil {
		t.Fatalf("blackholed dialler: the proxy forwarded %q", got)
	}
	n.Heal(1)
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("heal must cut a connection that lost bytes")
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "again"); err != nil || got != "again" {
		t.Fatalf("after heal a new connection works: got %q, %v", got, err)
	}
}

// A fault on another member leaves the connection alone.
func TestNetworkFaultOnOtherMemberPassesTraffic(t *testing.T) {
	n := NewNetwork(func() map[int]int { return map[int]int{1: os.Getpid()} })
	defer n.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := n.Listen(0, addr, echoServer(t)); err != nil {
		t.Fatal(err)
	}
	n.Set(2, NetFault{Blackhole: true})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "ping"); err != nil || got != "ping" {
		t.Fatalf("fault on member 2 must not touch member 1's connection to member 0: got %q, %v", got, err)
	}
}
