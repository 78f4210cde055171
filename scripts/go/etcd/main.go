// etcd server entry point, identical to etcd's own server/main.go: the server module carries
// replace directives, so it cannot be `go install`ed; this wrapper builds it from the proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
