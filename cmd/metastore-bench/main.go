// Command metastore-bench is a load generator for any etcd v3 API endpoint, with etcd
// benchmark's workloads and flags plus MetaStore's list and k8s workloads. See
// docs/BENCHMARKS.md; the work is done in package bench/cli.
package main

import (
	"os"

	"github.com/metastore/metastore/internal/bench/cli"
)

func main() { os.Exit(cli.Main()) }
