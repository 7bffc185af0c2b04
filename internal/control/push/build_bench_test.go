package push

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"weft.dev/weft/internal/control/store"
)

// meshObjects is a mesh of nSvc services with nEp workloads spread over
// them, as the store lists it.
func meshObjects(nSvc, nEp int) []*store.Object {
	var objs []*store.Object
	for i := 0; i < nSvc; i++ {
		objs = append(objs, &store.Object{Kind: "Service", Namespace: "default", Name: svcName(i), ResourceVersion: "1",
			Data: []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q,"namespace":"default"},"spec":{"selector":{"app":%q},"ports":[{"name":"http","port":80,"targetPort":"http","appProtocol":"http"}]}}`, svcName(i), svcName(i)))})
	}
	for i := 0; i < nEp; i++ {
		o := workloadStoreObject(fmt.Sprintf("w-%05d", i), svcName(i%nSvc), i)
		o.ResourceVersion = "1"
		objs = append(objs, &o)
	}
	return objs
}

// BenchmarkBuildEndpointChange is the control plane's work for one
// endpoint change in a mesh of 1,000 services and 10,000 endpoints:
// decode what changed, compile the whole mesh, cut it into resources.
func BenchmarkBuildEndpointChange(b *testing.B) {
	objs := meshObjects(1000, 10000)
	bl := newBuilder(quietLog)
	if _, err := bl.build(objs, 1); err != nil {
		b.Fatal(err)
	}
	extra := workloadStoreObject("extra", svcName(0), 99999)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cur := objs
		if i%2 == 0 {
			e := extra
			e.ResourceVersion = strconv.Itoa(i + 2)
			cur = append(objs[:len(objs):len(objs)], &e)
		}
		if _, err := bl.build(cur, int64(i+2)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildServiceChange is the work for a change that is not an
// endpoint's (a Service edited): the whole mesh recompiled, in batches.
func BenchmarkBuildServiceChange(b *testing.B) {
	objs := meshObjects(1000, 10000)
	bl := newBuilder(quietLog)
	if _, err := bl.build(objs, 1); err != nil {
		b.Fatal(err)
	}
	svc := *objs[0]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := svc
		s.Data = []byte(strings.Replace(string(svc.Data), `"port":80`, fmt.Sprintf(`"port":%d`, 80+i%2), 1))
		cur := append([]*store.Object{&s}, objs[1:]...)
		if _, err := bl.build(cur, int64(i+2)); err != nil {
			b.Fatal(err)
		}
	}
}
