package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// tcpServe accepts connections on listen and sends n bytes to each (one at a time: the
// bench runs one transfer at a time), until ctx ends.
func tcpServe(ctx context.Context, listen string, n int64, cc string) error {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "tcp-serve: listening on %s, %d bytes per connection\n", ln.Addr(), n)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		tc := c.(*net.TCPConn)
		used, err := congestion(tc, cc)
		if err != nil {
			c.Close()
			return err
		}
		fmt.Fprintf(os.Stderr, "tcp-serve: %s: congestion control %s\n", c.RemoteAddr(), used)
		start := time.Now()
		sent, err := io.CopyN(c, zeroReader{buf}, n)
		c.Close()
		fmt.Fprintf(os.Stderr, "tcp-serve: %s: wrote %d bytes in %s (err %v)\n", c.RemoteAddr(), sent, time.Since(start).Round(time.Millisecond), err)
	}
}

// zeroReader reads a fixed pattern forever.
type zeroReader struct{ b []byte }

func (z zeroReader) Read(p []byte) (int, error) { return copy(p, z.b), nil }

// tcpGet connects to addr and reads until EOF, n bytes or timeout, and prints the rate from
// the start of the connect to the last byte.
func tcpGet(ctx context.Context, addr string, n int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	buf := make([]byte, 256<<10)
	var got int64
	for got < n {
		k, err := c.Read(buf)
		got += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	el := time.Since(start)
	if got < n {
		fmt.Printf("tcp-get: INCOMPLETE %d of %d bytes (%.1f %%) in %.3f s\n", got, n, 100*float64(got)/float64(n), el.Seconds())
		return nil
	}
	fmt.Printf("tcp-get: %d bytes in %.3f s: %.3f MiB/s\n", got, el.Seconds(), float64(got)/(1<<20)/el.Seconds())
	return nil
}
