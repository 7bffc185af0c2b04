package proxy

import (
	"net/http"
	"testing"
)

func TestGRPCTrailersOnlyBecomesTrailers(t *testing.T) {
	resp := &http.Response{Header: http.Header{
		"Content-Type": {"application/grpc"}, "Grpc-Status": {"7"}, "Grpc-Message": {"denied"}}}
	grpcTrailersOnly(resp)
	if resp.Header.Get("Grpc-Status") != "" || resp.Trailer.Get("Grpc-Status") != "7" || resp.Trailer.Get("Grpc-Message") != "denied" {
		t.Fatalf("headers %v, trailers %v", resp.Header, resp.Trailer)
	}
	plain := &http.Response{Header: http.Header{"Content-Type": {"text/plain"}, "Grpc-Status": {"7"}}}
	grpcTrailersOnly(plain)
	if plain.Trailer != nil {
		t.Fatal("a non-gRPC response was changed")
	}
}
