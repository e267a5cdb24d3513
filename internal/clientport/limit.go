package clientport

import (
	"net"
	"sync"
)

// LimitListener returns l holding at most n connections open at once (n <= 0: l
// itself). A connection accepted while n are open is closed at once, before any byte is
// read, and refused is called (the caller counts it); unlike a listener that stops
// accepting, this keeps the kernel's backlog from filling with clients that would wait
// in vain. A connection counts from its accept until its Close.
func LimitListener(l net.Listener, n int, refused func()) net.Listener {
	if n <= 0 {
		return l
	}
	if refused == nil {
		refused = func() {}
	}
	return &limitListener{Listener: l, max: n, refused: refused}
}

type limitListener struct {
	net.Listener
	max     int
	refused func()

	mu   sync.Mutex
	open int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		ok := l.open < l.max
		if ok {
			l.open++
		}
		l.mu.Unlock()
		if ok {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.refused() // counted before the client can see the close
		_ = c.Close()
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}
