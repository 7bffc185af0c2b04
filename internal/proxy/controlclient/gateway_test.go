package controlclient

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
)

func gatewayRes(t *testing.T, ns, name string, listeners int) *meshv1.Resource {
	t.Helper()
	gw := &compile.Gateway{Name: name, Namespace: ns, Clusters: map[string]*compile.Cluster{}, Status: &compile.GatewayStatus{}}
	for i := 0; i < listeners; i++ {
		gw.Listeners = append(gw.Listeners, &compile.Listener{Name: "l", Port: int32(8080 + i), Protocol: compile.ListenerHTTP})
	}
	b, err := json.Marshal(gw)
	if err != nil {
		t.Fatal(err)
	}
	return &meshv1.Resource{Name: meshv1.GatewayResource(ns, name), Body: b}
}

// A gateway's client says which Gateway it runs, and hands the assembled
// compile.Gateway (its resource plus the clusters) to ApplyGateway; nil
// when the control plane has no such Gateway.
func TestGatewayMode(t *testing.T) {
	f := startFake(t, "")
	var mu sync.Mutex
	var applied []*compile.Gateway
	refuse := map[string]bool{}
	c, err := New(Options{Addrs: []string{f.addr}, Name: "edge", Namespace: "shop", ServiceAccount: "edge", Gateway: "edge", Logger: quietLog,
		ApplyGateway: func(gw *compile.Gateway) error {
			mu.Lock()
			defer mu.Unlock()
			if gw != nil && refuse[gw.Version] {
				return errors.New("port in use")
			}
			applied = append(applied, gw)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	last := func() *compile.Gateway {
		mu.Lock()
		defer mu.Unlock()
		return applied[len(applied)-1]
	}

	s := f.session(t)
	if s.hello.Gateway != "edge" || s.hello.Namespace != "shop" || s.hello.Address != "" {
		t.Fatalf("hello %+v", s.hello)
	}
	// No Gateway yet.
	s.send(t, &meshv1.ConfigUpdate{Version: "v0", Snapshot: true})
	if got := ackOf(s.reply(t)); got != "v0" || last() != nil {
		t.Fatalf("ack %q, applied %v", got, last())
	}
	s.send(t, &meshv1.ConfigUpdate{Version: "v1", Resources: []*meshv1.Resource{gatewayRes(t, "shop", "edge", 1), clusterRes(t, "web.shop:80", "10.0.0.1:80")}})
	if got := ackOf(s.reply(t)); got != "v1" {
		t.Fatalf("ack %q", got)
	}
	gw := last()
	if gw == nil || gw.Version != "v1" || len(gw.Listeners) != 1 || len(gw.Clusters["web.shop:80"].Endpoints) != 1 {
		t.Fatalf("applied %+v", gw)
	}
	// An endpoint change: only the cluster.
	s.send(t, &meshv1.ConfigUpdate{Version: "v2", Resources: []*meshv1.Resource{clusterRes(t, "web.shop:80", "10.0.0.1:80", "10.0.0.2:80")}})
	if got := ackOf(s.reply(t)); got != "v2" {
		t.Fatalf("ack %q", got)
	}
	if gw := last(); gw.Version != "v2" || len(gw.Listeners) != 1 || len(gw.Clusters["web.shop:80"].Endpoints) != 2 {
		t.Fatalf("applied %+v", gw)
	}
	// Refused: NACK, and the status keeps the applied version.
	mu.Lock()
	refuse["v3"] = true
	mu.Unlock()
	s.send(t, &meshv1.ConfigUpdate{Version: "v3", Resources: []*meshv1.Resource{gatewayRes(t, "shop", "edge", 2)}})
	if m := s.reply(t); m.GetNack().GetVersion() != "v3" || m.GetNack().GetError() != "port in use" {
		t.Fatalf("reply %v", m)
	}
	if st := c.Status(); st.Applied != "v2" || c.Gateway().Version != "v2" {
		t.Fatalf("status %+v", st)
	}
	// The Gateway goes.
	s.send(t, &meshv1.ConfigUpdate{Version: "v4", Removed: []string{meshv1.GatewayResource("shop", "edge"), meshv1.ClusterResource("web.shop:80")}})
	if got := ackOf(s.reply(t)); got != "v4" || last() != nil {
		t.Fatalf("ack %q, applied %v", got, last())
	}
}

func TestGatewayModeNeedsApplyGateway(t *testing.T) {
	if _, err := New(Options{Addrs: []string{"x:1"}, Name: "edge", Gateway: "edge"}); err == nil {
		t.Fatal("no error without ApplyGateway")
	}
}
