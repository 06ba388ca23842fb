// Command articles-peer-backend is an in-memory grpc-go implementation of
// article.v1.ArticleService, the backend that the benchmark puts behind both
// our gateway and grpc-gateway. Only ArticleList and ArticleDetail are
// implemented; every other method answers Unimplemented.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "articlespeer/gen/articlev1"
)

const (
	createTime      = "2026-01-01 00:00:00"
	defaultPageSize = 10
	maxPageSize     = 100
	contentLen      = 300
)

// article is one stored row; responses get fresh messages built from it, so
// that concurrent marshalling never shares a message (and its size cache).
type article struct {
	id    int32
	title string
}

type server struct {
	pb.UnimplementedArticleServiceServer
	articles []article // articles[i] has id i+1
	content  string
}

func newServer(n int) *server {
	s := &server{articles: make([]article, n)}
	s.content = strings.Repeat("The quick brown fox jumps over the lazy dog. ", contentLen/45+1)[:contentLen]
	for i := range s.articles {
		id := int32(i + 1)
		s.articles[i] = article{id: id, title: "Article " + strconv.Itoa(int(id))}
	}
	return s
}

func (s *server) message(a article) *pb.Article {
	return &pb.Article{Id: a.id, Title: a.title, Content: s.content, CreateTime: createTime}
}

func (s *server) ArticleList(_ context.Context, req *pb.ArticleListRequest) (*pb.ArticleListResponse, error) {
	page, size := req.GetPage(), req.GetPageSize()
	if page < 0 {
		return nil, status.Error(codes.InvalidArgument, "page must not be negative")
	}
	if size < 0 {
		return nil, status.Error(codes.InvalidArgument, "page_size must not be negative")
	}
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = defaultPageSize
	}
	if size > maxPageSize {
		size = maxPageSize
	}
	total := int64(len(s.articles))
	start := (int64(page) - 1) * int64(size)
	end := start + int64(size)
	if start > total {
		start = total
	}
	if end > total {
		end = total
	}
	resp := &pb.ArticleListResponse{
		Articles: make([]*pb.Article, 0, end-start),
		Total:    int32(total),
	}
	for _, a := range s.articles[start:end] {
		resp.Articles = append(resp.Articles, s.message(a))
	}
	if end < total {
		resp.NextPage = page + 1
	}
	return resp, nil
}

func (s *server) ArticleDetail(_ context.Context, req *pb.ArticleDetailRequest) (*pb.ArticleDetailResponse, error) {
	pk := req.GetPk()
	if pk <= 0 {
		return nil, status.Error(codes.InvalidArgument, "pk must be positive")
	}
	if int64(pk) > int64(len(s.articles)) {
		return nil, status.Errorf(codes.NotFound, "article %d not found", pk)
	}
	return &pb.ArticleDetailResponse{Article: s.message(s.articles[pk-1])}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (host:port)")
	n := flag.Int("articles", 1000, "number of articles held in memory")
	flag.Parse()
	if *n < 0 || int64(*n) > int64(^uint32(0)>>1) {
		fmt.Fprintf(os.Stderr, "-articles must be between 0 and %d\n", ^uint32(0)>>1)
		os.Exit(2)
	}

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	pb.RegisterArticleServiceServer(srv, newServer(*n))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		srv.Stop()
		os.Exit(0)
	}()

	// os.Stdout is unbuffered: the line is written out by the time Printf returns.
	fmt.Printf("listening on %s\n", lis.Addr())
	_ = os.Stdout.Sync()
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}
