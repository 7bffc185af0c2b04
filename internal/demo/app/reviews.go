package app

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	demov1 "weft.dev/weft/api/demo/v1"
)

var reviewTexts = map[string]string{
	"p1": "Sturdy and smooth; weaves like a dream.",
	"p2": "Light, quick, does one thing well.",
	"p3": "Soft, even, no knots.",
}

// reviews answers a product's review; v2 adds stars from ratings (gRPC).
type reviews struct {
	version string
	ratings string // the sidecar's local port for ratings; empty in v1

	once   sync.Once
	client demov1.RatingsClient
	err    error
}

func newReviews(version, ratingsAddr string) *reviews {
	return &reviews{version: version, ratings: ratingsAddr}
}

func (s *reviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/reviews/")
	text, known := reviewTexts[id]
	if !ok || !known {
		http.NotFound(w, r)
		return
	}
	rv := review{Version: s.version, Text: text}
	if s.ratings != "" {
		stars, err := s.stars(r, id)
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "ratings: " + err.Error()})
			return
		}
		rv.Stars = stars
	}
	writeJSON(w, http.StatusOK, rv)
}

func (s *reviews) stars(in *http.Request, id string) (int32, error) {
	s.once.Do(func() {
		conn, err := grpc.NewClient(s.ratings, grpc.WithTransportCredentials(insecure.NewCredentials()))
		s.client, s.err = demov1.NewRatingsClient(conn), err
	})
	if s.err != nil {
		return 0, s.err
	}
	ctx, cancel := context.WithTimeout(in.Context(), 3*time.Second)
	defer cancel()
	md := metadata.MD{}
	for _, h := range traceHeaders {
		if v := in.Header.Get(h); v != "" {
			md.Set(h, v)
		}
	}
	res, err := s.client.Get(metadata.NewOutgoingContext(ctx, md), &demov1.RatingRequest{ProductId: id})
	if err != nil {
		return 0, err
	}
	return res.Stars, nil
}

// ratings serves stars over gRPC.
type ratings struct {
	demov1.UnimplementedRatingsServer
}

var stars = map[string]int32{"p1": 5, "p2": 4, "p3": 4}

func (ratings) Get(ctx context.Context, req *demov1.RatingRequest) (*demov1.Rating, error) {
	return &demov1.Rating{ProductId: req.ProductId, Stars: stars[req.ProductId], Votes: 17}, nil
}

func registerRatings(s *grpc.Server) { demov1.RegisterRatingsServer(s, ratings{}) }
