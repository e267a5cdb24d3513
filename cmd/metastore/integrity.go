package main

import (
	"context"
	"time"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/server"
)

// startIntegrity runs etcd's corruption checks that cfg turns on (config.Integrity):
// the initial check before the member serves clients (an inconsistency stops the
// start, as etcd), then the leader's periodic and compaction hash checks.
func (m *member) startIntegrity(cfg *config.Config) error {
	in, err := cfg.Integrity()
	if err != nil {
		return err
	}
	if in.InitialCorruptCheck {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := m.srv.InitialCorruptCheck(ctx)
		cancel()
		if err != nil {
			return err
		}
	}
	m.srv.StartCorruptChecks(server.CorruptCheck{
		CorruptCheckTime:     in.CorruptCheckTime,
		CompactHashCheck:     in.CompactHashCheck,
		CompactHashCheckTime: in.CompactHashCheckTime,
	})
	return nil
}
