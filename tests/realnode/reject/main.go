// A kube-apiserver image that refuses one value and is the real apiserver otherwise: how the
// real-node tier stages "the new apiserver rejects its arguments" the way the kubelet meets it
// (same image tag, a container that exits at once, again and again under the real back-off).
// The real binary is exec'd under the name kube-apiserver, so /proc shows the real process.
package main

import (
	"fmt"
	"os"
	"syscall"
)

const refused = "--service-account-extend-token-expiration=false"

func main() {
	for _, arg := range os.Args[1:] {
		if arg == refused {
			fmt.Fprintf(os.Stderr, "Error: invalid argument %q: refused by the real-node tier's staged image\n", arg)
			os.Exit(1)
		}
	}
	err := syscall.Exec("/real/kube-apiserver", os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "cannot run /real/kube-apiserver: %v\n", err)
	os.Exit(1)
}
