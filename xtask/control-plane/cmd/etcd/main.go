// Command etcd is upstream's etcd server main (go.etcd.io/etcd/server/v3),
// at the version k8s.io/kubernetes pins in ../../go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
