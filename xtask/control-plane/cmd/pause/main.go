// Command pause is the test node's sandbox ("pause") container: it holds a
// Pod's namespaces and does nothing else. Upstream's is a C program built
// into registry.k8s.io/pause, which cannot be pulled here; this is the same
// behaviour in Go, built static (CGO_ENABLED=0) so the image needs nothing
// but the binary: wait for SIGINT or SIGTERM and exit 0, and reap the
// zombies a Pod sharing its PID namespace leaves to PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
