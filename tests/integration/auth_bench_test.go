package integration

import (
	"os"
	"sync"
	"testing"
	"time"
)

// TestAuthenticateThroughput logs how many Authenticate calls a member answers per
// second at etcd's default bcrypt cost (10), from 8 clients at once, and that a Get
// served meanwhile is not held up behind them. It asserts no figure (the machine is
// shared); it runs only with AUTH_BENCH=1 (ETCD_BIN adds etcd beside it).
func TestAuthenticateThroughput(t *testing.T) {
	if os.Getenv("AUTH_BENCH") == "" {
		t.Skip("set AUTH_BENCH=1 to measure")
	}
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx := ctxT(t)
		must(t, func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err })
		must(t, func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err })
		must(t, func() error { _, err := cli.AuthEnable(ctx); return err })
		root := c.userClient("root", "rootpw")
		const clients, per = 8, 25
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					if _, err := cli.Authenticate(ctx, "root", "rootpw"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		var getWorst time.Duration
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for loop := true; loop; {
			select {
			case <-done:
				loop = false
			default:
				s := time.Now()
				if _, err := root.Get(ctx, "k"); err != nil {
					t.Error(err)
				}
				getWorst = max(getWorst, time.Since(s))
			}
		}
		el := time.Since(start)
		t.Logf("%s: %d Authenticate in %v: %.0f/s; slowest Get meanwhile %v", b.name, clients*per, el.Round(time.Millisecond),
			float64(clients*per)/el.Seconds(), getWorst.Round(time.Millisecond))
	})
}
