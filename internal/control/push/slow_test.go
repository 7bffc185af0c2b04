package push

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	meshv1 "weft.dev/weft/api/mesh/v1"
)

// gatedStream is a stream whose Send blocks until the test lets it through:
// a proxy that reads slowly.
type gatedStream struct {
	grpc.BidiStreamingServer[meshv1.ProxyMessage, meshv1.ConfigUpdate]
	ctx  context.Context
	gate chan struct{}
	sent chan *meshv1.ConfigUpdate
}

func (g *gatedStream) Context() context.Context { return g.ctx }

func (g *gatedStream) Send(u *meshv1.ConfigUpdate) error {
	<-g.gate
	g.sent <- u
	return nil
}

// A proxy that is slow to read gets the newest config when it catches up,
// not every version it missed (Consul's deliverLatest).
func TestSlowProxyGetsNewestNotBacklog(t *testing.T) {
	s := New(newMemStore(), Options{Logger: quietLog})
	b := newBuilder(quietLog)
	build := func(extra string, rev int64) *view {
		v, err := b.build(storeObjects(t, meshYAML+extra), rev)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	publish := func(v *view, p *proxyStream) {
		s.current.Store(v)
		s.readyOnce.Do(func() { close(s.viewReady) })
		p.wake()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gs := &gatedStream{ctx: ctx, gate: make(chan struct{}), sent: make(chan *meshv1.ConfigUpdate, 10)}
	p, err := s.newProxyStream(gs, &meshv1.Hello{Name: "slow", Dependencies: []string{"ratings"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.sendLoop(ctx) }()

	publish(build("", 1), p)
	// The snapshot is stuck in Send; three more versions come meanwhile.
	var last *view
	for i := 0; i < 3; i++ {
		last = build("---"+workloadYAML(i), int64(i+2))
		publish(last, p)
		time.Sleep(10 * time.Millisecond)
	}
	gs.gate <- struct{}{} // the snapshot goes out
	snap := <-gs.sent
	if !snap.Snapshot {
		t.Fatal("first update is not a snapshot")
	}
	gs.gate <- struct{}{}
	u := <-gs.sent
	in, err := last.inbound(p.self, p.ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := proxyVersion(last.scoped(p.scope()), in)
	if u.Version != want || u.Snapshot {
		t.Errorf("after catching up the proxy got version %s (snapshot %v), want the newest %s as a delta", u.Version, u.Snapshot, want)
	}
	select {
	case extra := <-gs.sent:
		t.Errorf("a backlog update followed: %s", extra.Version)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	close(gs.gate)
	<-done
}
