// standin-lb takes the place of Envoy in kind's load-balancer container, for the multi-node
// rehearsal on machines that cannot pull or build kind's load-balancer image
// (docker.io/envoyproxy/envoy, a C++ build). It is installed as `envoy` and started by kind's own
// bootstrap command (`envoy -c /home/envoy/envoy.yaml`); it reads the listener and the backends
// from the files kind writes (the bootstrap names them: cds_config and lds_config paths), re-reads
// them every second as Envoy's path_config_source does, checks each backend's /healthz over TLS
// every 2 s (2 failures: out, 1 success: in, as kind's config asks), and forwards TCP round-robin
// to the healthy ones. A TCP proxy with health checks, nothing more: what kind's config uses.
package main

import (
	"crypto/tls"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"
)

var (
	pathLine    = regexp.MustCompile(`(?m)^\s*path:\s*(\S+)\s*$`)
	addressLine = regexp.MustCompile(`(?m)^\s*address:\s*"?([^"\s]+)"?\s*$`)
	portLine    = regexp.MustCompile(`(?m)^\s*port_value:\s*(\d+)\s*$`)
)

type backends struct {
	sync.Mutex
	addrs   []string
	healthy map[string]bool
	fails   map[string]int
	next    int
}

func main() {
	config := flag.String("c", "/home/envoy/envoy.yaml", "bootstrap configuration")
	flag.Parse()
	text, err := os.ReadFile(*config)
	if err != nil {
		log.Fatal(err)
	}
	paths := pathLine.FindAllStringSubmatch(string(text), -1)
	if len(paths) < 2 {
		log.Fatalf("%s: no cds_config and lds_config paths", *config)
	}
	cds, lds := paths[0][1], paths[1][1]
	pool := &backends{healthy: map[string]bool{}, fails: map[string]int{}}
	listening := 0
	go pool.check()
	for {
		if port := listenerPort(lds); port != 0 && port != listening {
			listener, err := net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
			if err != nil {
				log.Printf("listen on %d: %v", port, err)
			} else {
				log.Printf("listening on %d", port)
				listening = port
				go serve(listener, pool)
			}
		}
		pool.set(endpoints(cds))
		time.Sleep(time.Second)
	}
}

// The listener's port in the LDS file (0: none yet).
func listenerPort(file string) int {
	text, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	if m := portLine.FindStringSubmatch(string(text)); m != nil {
		port, _ := strconv.Atoi(m[1])
		return port
	}
	return 0
}

// The backends in the CDS file: each socket_address's address and port_value, in order.
func endpoints(file string) []string {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	addresses := addressLine.FindAllStringSubmatch(string(text), -1)
	ports := portLine.FindAllStringSubmatch(string(text), -1)
	var out []string
	for i := 0; i < len(addresses) && i < len(ports); i++ {
		out = append(out, net.JoinHostPort(addresses[i][1], ports[i][1]))
	}
	return out
}

func (b *backends) set(addrs []string) {
	b.Lock()
	defer b.Unlock()
	b.addrs = addrs
}

func (b *backends) check() {
	client := &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	for {
		b.Lock()
		addrs := append([]string(nil), b.addrs...)
		b.Unlock()
		for _, addr := range addrs {
			ok := false
			if resp, err := client.Get("https://" + addr + "/healthz"); err == nil {
				ok = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
			b.Lock()
			switch {
			case ok && !b.healthy[addr]:
				log.Printf("%s healthy", addr)
				b.healthy[addr], b.fails[addr] = true, 0
			case ok:
				b.fails[addr] = 0
			case b.healthy[addr]:
				if b.fails[addr]++; b.fails[addr] >= 2 {
					log.Printf("%s unhealthy", addr)
					b.healthy[addr] = false
				}
			}
			b.Unlock()
		}
		time.Sleep(2 * time.Second)
	}
}

// The next healthy backend, round-robin ("": none).
func (b *backends) pick() string {
	b.Lock()
	defer b.Unlock()
	for range b.addrs {
		addr := b.addrs[b.next%len(b.addrs)]
		b.next++
		if b.healthy[addr] {
			return addr
		}
	}
	return ""
}

func serve(listener net.Listener, pool *backends) {
	for {
		client, err := listener.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() {
			defer client.Close()
			addr := pool.pick()
			if addr == "" {
				return
			}
			server, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				log.Printf("dial %s: %v", addr, err)
				return
			}
			defer server.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(server, client); done <- struct{}{} }()
			go func() { io.Copy(client, server); done <- struct{}{} }()
			<-done
		}()
	}
}
