package telemetry

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func routed(svc, route, cluster string, code int) func(x *Exchange, w http.ResponseWriter) {
	return func(x *Exchange, w http.ResponseWriter) {
		x.Service(svc, "shop")
		x.Route(route)
		x.Cluster(cluster)
		x.Upstream("shop/"+svc+"-1", "10.0.0.7:9080")
		w.WriteHeader(code)
	}
}

func TestSnapshot(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{Workload: "productpage", Namespace: "shop"}, nil)
	for i := 0; i < 5; i++ {
		serve(rec, Client, httptest.NewRequest("GET", "http://reviews/", nil), routed("reviews", "shop/reviews/0", "reviews-v2.shop:9080", 200))
	}
	for i := 0; i < 2; i++ {
		serve(rec, Client, httptest.NewRequest("GET", "http://reviews/", nil), routed("reviews", "shop/reviews/0", "reviews-v2.shop:9080", 503))
	}
	serve(rec, Client, httptest.NewRequest("GET", "http://reviews/", nil), routed("reviews", "shop/reviews/0", "reviews-v2.shop:9080", 404))
	serve(rec, Client, httptest.NewRequest("GET", "http://ratings/", nil), routed("ratings", "", "ratings.shop:9080", 200))
	// Server-side traffic is not the caller's view: left out.
	serve(rec, Server, httptest.NewRequest("GET", "http://productpage/", nil), func(x *Exchange, w http.ResponseWriter) { w.WriteHeader(200) })
	// gRPC: a non-OK status is an error even under 200.
	serve(rec, Client, grpcRequest(), func(x *Exchange, w http.ResponseWriter) {
		x.Service("ratings", "shop")
		x.Cluster("ratings.shop:9080")
		w.Header().Set("Grpc-Status", "14")
		w.WriteHeader(200)
	})
	// TCP
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	tc := rec.BeginTCP(c1, Client)
	tc.Destination("db", "shop", "shop/db/0", "db.shop:5432")
	tc.Connected("shop/db-1", "10.0.0.9:5432")
	tc.Bytes(100, 2000)
	tc.End()

	s := rg.tel.Snapshot()
	if len(s.Requests) != 2 {
		t.Fatalf("%d request entries; want 2: %+v", len(s.Requests), s.Requests)
	}
	ra, rv := s.Requests[0], s.Requests[1]
	if ra.Service != "ratings.shop" || ra.Route != "" || ra.Requests != 2 || ra.Errors != 1 {
		t.Errorf("ratings = %+v; want 2 requests, 1 error", ra)
	}
	if rv.Service != "reviews-v2.shop" || rv.Route != "shop/reviews/0" || rv.Requests != 8 || rv.Errors != 2 {
		t.Errorf("reviews = %+v; want 8 requests, 2 errors", rv)
	}
	if rv.StatusClasses != [6]uint64{0, 0, 5, 0, 1, 2} {
		t.Errorf("status classes %v", rv.StatusClasses)
	}
	var n uint64
	for _, b := range rv.Buckets {
		n += b
	}
	if len(rv.Buckets) != len(DurationBuckets)+1 || n != 8 {
		t.Errorf("buckets %v: %d in all; want %d buckets holding 8", rv.Buckets, n, len(DurationBuckets)+1)
	}
	if len(s.TCP) != 1 || s.TCP[0] != (TCPTotals{Service: "db.shop", Route: "shop/db/0", Opened: 1, Closed: 1, SentBytes: 2000, RecvedBytes: 100}) {
		t.Errorf("tcp = %+v", s.TCP)
	}
}

func grpcRequest() *http.Request {
	r := httptest.NewRequest("POST", "http://ratings/ratings.Ratings/Get", nil)
	r.Header.Set("Content-Type", "application/grpc")
	return r
}

func TestSnapshotWithoutMetrics(t *testing.T) {
	tel, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := tel.Snapshot(); len(s.Requests) != 0 || len(s.TCP) != 0 {
		t.Errorf("snapshot without metrics: %+v", s)
	}
	var nilTel *Telemetry
	nilTel.Snapshot()
	nilTel.OpenTap("x", TapFilter{}, 1)
	nilTel.CloseTap("x")
}

func TestIsError(t *testing.T) {
	for _, c := range []struct {
		code  int
		grpc  int32
		flags string
		want  bool
	}{
		{200, -1, "-", false}, {404, -1, "-", false}, {500, -1, "-", true}, {503, -1, "circuit-open", true},
		{200, 0, "-", false}, {200, 14, "-", true}, {0, -1, FlagClientClosed, false}, {0, -1, "-", true},
	} {
		if got := IsError(c.code, c.grpc, c.flags); got != c.want {
			t.Errorf("IsError(%d, %d, %q) = %v", c.code, c.grpc, c.flags, got)
		}
	}
}

func tapEvents(tel *Telemetry) []*TapEvent {
	var out []*TapEvent
	for {
		select {
		case ev := <-tel.TapEvents():
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestTap(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{Workload: "productpage", Namespace: "shop"}, nil)
	send := func(method, url, svc, cluster string) {
		serve(rec, Client, httptest.NewRequest(method, url, nil), routed(svc, "shop/"+svc+"/0", cluster, 200))
	}
	send("GET", "http://reviews/r/1", "reviews", "reviews-v2.shop:9080")
	if evs := tapEvents(rg.tel); len(evs) != 0 {
		t.Fatalf("events without a tap: %v", evs)
	}

	rg.tel.OpenTap("all", TapFilter{}, 100)
	rg.tel.OpenTap("reviews", TapFilter{Namespace: "shop", Service: "reviews", PathPrefix: "/r/", Method: "get"}, 100)
	rg.tel.OpenTap("v2", TapFilter{Service: "reviews-v2"}, 100) // the backend's service matches too
	send("GET", "http://reviews/r/2", "reviews", "reviews-v2.shop:9080")
	send("POST", "http://reviews/r/3", "reviews", "reviews-v2.shop:9080")
	send("GET", "http://reviews/other", "reviews", "reviews-v1.shop:9080")
	send("GET", "http://ratings/r/4", "ratings", "ratings.shop:9080")
	serve(rec, Server, httptest.NewRequest("GET", "http://productpage/r/5", nil), func(x *Exchange, w http.ResponseWriter) {})
	evs := tapEvents(rg.tel)
	want := [][]string{{"all", "reviews", "v2"}, {"all", "v2"}, {"all"}, {"all"}}
	if len(evs) != len(want) {
		t.Fatalf("%d events; want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if len(ev.Taps) != len(want[i]) {
			t.Errorf("event %d (%s %s) matched %v; want %v", i, ev.Method, ev.Path, ev.Taps, want[i])
			continue
		}
		for j := range want[i] {
			if ev.Taps[j] != want[i][j] {
				t.Errorf("event %d matched %v; want %v", i, ev.Taps, want[i])
			}
		}
	}
	ev := evs[0]
	if ev.Method != "GET" || ev.Path != "/r/2" || ev.Status != 200 || ev.Service != "reviews-v2.shop" ||
		ev.Workload != "shop/reviews-1" || ev.Source.Workload != "productpage" || ev.GRPCStatus != -1 || ev.Duration <= 0 || ev.Start.IsZero() {
		t.Errorf("event = %+v", ev)
	}

	rg.tel.CloseTap("all")
	rg.tel.CloseTap("v2")
	rg.tel.CloseTap("reviews")
	send("GET", "http://reviews/r/6", "reviews", "reviews-v2.shop:9080")
	if evs := tapEvents(rg.tel); len(evs) != 0 {
		t.Fatalf("events after every tap closed: %d", len(evs))
	}
}

func TestTapRateAndQueueBounds(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{Workload: "pp", Namespace: "shop"}, nil)
	rg.tel.OpenTap("slow", TapFilter{}, 3)
	for i := 0; i < 10; i++ {
		serve(rec, Client, httptest.NewRequest("GET", "http://reviews/", nil), routed("reviews", "", "reviews.shop:80", 200))
	}
	if evs := tapEvents(rg.tel); len(evs) != 3 {
		t.Errorf("%d events at 3/s; want a burst of 3", len(evs))
	}
	if d := rg.tel.TapDropped(); d != 7 {
		t.Errorf("dropped %d; want 7", d)
	}
	rg.tel.OpenTap("slow", TapFilter{}, 10000) // replaces the filter and rate
	for i := 0; i < TapQueue+5; i++ {
		serve(rec, Client, httptest.NewRequest("GET", "http://reviews/", nil), routed("reviews", "", "reviews.shop:80", 200))
	}
	if n := len(tapEvents(rg.tel)); n != TapQueue {
		t.Errorf("%d queued; want the queue's %d", n, TapQueue)
	}
	if d := rg.tel.TapDropped(); d != 5 {
		t.Errorf("dropped %d with the queue full; want 5", d)
	}
	rg.tel.CloseAllTaps()
}

// BenchmarkExchangeNoTap and BenchmarkExchangeTapOtherService show what an
// open tap costs requests it does not match, against none open.
func BenchmarkExchangeNoTap(b *testing.B) {
	benchExchange(b, benchTel(b).For(Peer{Workload: "pp", Namespace: "default"}, nil))
}

func BenchmarkExchangeTapOtherService(b *testing.B) {
	tel := benchTel(b)
	tel.OpenTap("x", TapFilter{Namespace: "default", Service: "ratings"}, 100)
	benchExchange(b, tel.For(Peer{Workload: "pp", Namespace: "default"}, nil))
}

func benchTel(b *testing.B) *Telemetry {
	tel, err := New(Options{Registerer: prometheus.NewRegistry(), TraceSampling: 1})
	if err != nil {
		b.Fatal(err)
	}
	return tel
}
