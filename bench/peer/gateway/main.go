// Command articles-peer-gateway is plain grpc-gateway 1.6.4 in front of an
// article.v1.ArticleService backend: runtime.NewServeMux() with default
// options, the generated handlers, net/http's http.Serve, no middleware.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"

	pb "articlespeer/gen/articlev1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (host:port)")
	backend := flag.String("backend", "", "gRPC backend address (host:port, plaintext)")
	flag.Parse()
	if *backend == "" {
		fmt.Fprintln(os.Stderr, "-backend is required")
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mux := runtime.NewServeMux()
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if err := pb.RegisterArticleServiceHandlerFromEndpoint(ctx, mux, *backend, opts); err != nil {
		fmt.Fprintf(os.Stderr, "register handlers for %s: %v\n", *backend, err)
		os.Exit(1)
	}

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen %s: %v\n", *addr, err)
		os.Exit(1)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		os.Exit(0)
	}()

	// os.Stdout is unbuffered: the line is written out by the time Printf returns.
	fmt.Printf("listening on %s\n", lis.Addr())
	_ = os.Stdout.Sync()
	if err := http.Serve(lis, mux); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}
