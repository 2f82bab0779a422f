// The pod sandbox's process (the "pause" image): holds the pod's namespaces until it is told to
// stop, and reaps the children that the pod's other processes leave to it as PID 1. Written here
// because the real-node tier pulls nothing: every image is built from binaries on this machine.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
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
