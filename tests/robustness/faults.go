package robustness

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// Fault is one failure injected into a running cluster. Inject blocks until
// the fault is healed: every member is running and connected again.
type Fault struct {
	Name       string
	MinMembers int  // the fault needs at least this many members
	Membership bool // the fault uses member remove/add
	Inject     func(ctx context.Context, c *Cluster) error
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

type pick func(ctx context.Context, c *Cluster) (*Member, error)

func leader(ctx context.Context, c *Cluster) (*Member, error)   { return c.Leader(ctx) }
func follower(ctx context.Context, c *Cluster) (*Member, error) { return c.Follower(ctx) }

func killFault(name string, min int, who pick) Fault {
	return Fault{Name: name, MinMembers: min, Inject: func(ctx context.Context, c *Cluster) error {
		m, err := who(ctx, c)
		if err != nil {
			return err
		}
		if err := c.Kill(m); err != nil {
			return err
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		return c.Restart(ctx, m)
	}}
}

func pauseFault(name string, min int, who pick) Fault {
	return Fault{Name: name, MinMembers: min, Inject: func(ctx context.Context, c *Cluster) error {
		m, err := who(ctx, c)
		if err != nil {
			return err
		}
		if err := c.Signal(m, syscall.SIGSTOP); err != nil {
			return err
		}
		serr := sleep(ctx, 2*time.Second)
		if err := c.Signal(m, syscall.SIGCONT); err != nil {
			return err
		}
		return serr
	}}
}

func netFault(name string, who pick, f NetFault) Fault {
	return Fault{Name: name, MinMembers: 3, Inject: func(ctx context.Context, c *Cluster) error {
		m, err := who(ctx, c)
		if err != nil {
			return err
		}
		c.Net.Set(m.Index, f)
		serr := sleep(ctx, 3*time.Second)
		c.Net.Heal(m.Index)
		return serr
	}}
}

// Faults lists every fault the harness can inject.
var Faults = []Fault{
	killFault("kill-leader", 1, leader),
	killFault("kill-follower", 3, follower),
	pauseFault("pause-leader", 1, leader),
	pauseFault("pause-follower", 3, follower),
	netFault("blackhole-leader", leader, NetFault{Blackhole: true}),
	netFault("blackhole-follower", follower, NetFault{Blackhole: true}),
	netFault("delay-leader", leader, NetFault{Delay: 50 * time.Millisecond}),
	netFault("drop-leader", leader, NetFault{Drop: 0.2}),
	{Name: "restart-all", MinMembers: 1, Inject: func(ctx context.Context, c *Cluster) error {
		for _, m := range c.Members {
			if err := c.Kill(m); err != nil {
				return err
			}
		}
		for _, m := range c.Members {
			if err := c.start(m, "existing", c.initialCluster()); err != nil {
				return err
			}
		}
		for _, m := range c.Members {
			if err := c.WaitReady(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}},
	{Name: "member-replace", MinMembers: 3, Membership: true, Inject: func(ctx context.Context, c *Cluster) error {
		m, err := c.Follower(ctx)
		if err != nil {
			return err
		}
		return c.Replace(ctx, m)
	}},
}

// FaultByName finds a fault in Faults.
func FaultByName(name string) (Fault, error) {
	for _, f := range Faults {
		if f.Name == name {
			return f, nil
		}
	}
	return Fault{}, fmt.Errorf("robustness: no fault %q", name)
}
