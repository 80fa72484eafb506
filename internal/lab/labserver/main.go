// Command labserver is the program inside the lab's container image: it
// answers every TCP connection on each port named in its arguments (8080
// without any) with one line naming it, "labserver <name> <port>", where
// name is $NAME or the host name, and exits at SIGTERM, as docker stop
// asks. It is built static (CGO_ENABLED=0) into an image FROM scratch,
// since the lab reaches no registry.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ports := os.Args[1:]
	if len(ports) == 0 {
		ports = []string{"8080"}
	}
	name := os.Getenv("NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go serve(ln, fmt.Sprintf("labserver %s %s\n", name, p))
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
}

// serve answers every connection: it writes greeting, then reads what
// the client sends until it closes (a second at most) before closing: a
// close with a request still unread would reset the connection, which
// could lose the greeting.
func serve(ln net.Listener, greeting string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			_, _ = c.Write([]byte(greeting))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		}()
	}
}
