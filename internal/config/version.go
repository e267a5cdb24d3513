package config

import (
	"fmt"
	"runtime"
)

// Version is metastore's own version.
const Version = "0.1.0"

// EtcdVersion is the etcd release whose API and command line metastore implements.
// (Tested equal to go.etcd.io/etcd/api/v3/version.Version.)
const EtcdVersion = "3.7.3"

// VersionText is what --version prints to stdout (etcd's four lines plus ours).
func VersionText(gitSHA string) string {
	return fmt.Sprintf("etcd Version: %s\nMetaStore Version: %s\nGit SHA: %s\nGo Version: %s\nGo OS/Arch: %s/%s\n",
		EtcdVersion, Version, gitSHA, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
