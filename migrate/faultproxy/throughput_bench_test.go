package faultproxy

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// cpuTime is this process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProxyThroughput carries 256 MB from a server to a client, direct
// and through the proxy, in writes of 64 KB (large messages) and of 1 KB
// (small ones), and reports the process's CPU per GB: what the delay proxy
// costs the benchmark's two cores beside the servers it stands between.
//
//	go test -run '^$' -bench ProxyThroughput -benchtime 1x ./migrate/faultproxy
func BenchmarkProxyThroughput(b *testing.B) {
	const total = 256 << 20
	for _, write := range []int{64 << 10, 1 << 10} {
		for _, lat := range []time.Duration{-1, 0, 40 * time.Millisecond} {
			name := fmt.Sprintf("write=%d/latency=%v", write, lat)
			if lat < 0 {
				name = fmt.Sprintf("write=%d/direct", write)
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						b.Fatal(err)
					}
					go func() {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						buf := make([]byte, write)
						for sent := 0; sent < total; sent += write {
							if _, err := c.Write(buf); err != nil {
								break
							}
						}
						c.Close()
					}()
					addr := ln.Addr().String()
					var p *Proxy
					if lat >= 0 {
						p, err = New(addr, Faults{Latency: lat})
						if err != nil {
							b.Fatal(err)
						}
						addr = p.Addr()
					}
					cpu0, t0 := cpuTime(), time.Now()
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
					wall, cpu := time.Since(t0), cpuTime()-cpu0
					c.Close()
					if p != nil {
						p.Close()
					}
					ln.Close()
					if n != total {
						b.Fatalf("got %d bytes, want %d", n, total)
					}
					b.ReportMetric(cpu.Seconds()*float64(1<<30)/total, "cpu-s/GB")
					b.ReportMetric(float64(total)/(1<<20)/wall.Seconds(), "MB/s")
				}
			})
		}
	}
}
