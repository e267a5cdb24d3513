// Command kube-apiserver is Kubernetes' API server built from k8s.io/kubernetes v1.34.2, for
// run.sh to run against MetaStore or etcd (issues 10 and 11: a kube-apiserver must run on MetaStore).
package main

import (
	"os"

	_ "time/tzdata"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
