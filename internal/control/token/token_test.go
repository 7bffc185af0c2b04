package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/control/store"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestParse(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in     string
		secret string
		ok     bool
	}{
		{"weft1." + hash + ".s3cr3t", "s3cr3t", true},
		{" weft1." + hash + ".s3cr3t\n", "s3cr3t", true},
		{"", "", false},
		{"garbage", "", false},
		{"weft2." + hash + ".s", "", false},
		{"weft1.abcd.s", "", false},
		{"weft1." + strings.Repeat("zz", 32) + ".s", "", false},
		{"weft1." + hash + ".", "", false},
		{"weft1." + hash + ".a.b", "", false},
	} {
		h, s, err := Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q): %v is not ErrMalformed", tc.in, err)
			}
			continue
		}
		if s != tc.secret || len(h) != 32 {
			t.Errorf("Parse(%q) = %x, %q", tc.in, h, s)
		}
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Now()
	// The admin token shares the kind and must never pass as a join token.
	if _, err := st.Put(ctx, []store.Write{{Object: store.Object{Kind: Kind, Namespace: Namespace, Name: AdminName, Data: []byte(`{"token":"admin-secret"}`)}}}); err != nil {
		t.Fatal(err)
	}
	// The default join token in its older form: no expiry, no scope.
	if _, err := st.Put(ctx, []store.Write{{Object: store.Object{Kind: Kind, Namespace: Namespace, Name: DefaultJoinName, Data: []byte(`{"token":"default-secret"}`)}}}); err != nil {
		t.Fatal(err)
	}
	any, err := Create(ctx, st, CreateOptions{Name: "any"}, now)
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := Create(ctx, st, CreateOptions{Name: "shop-web", Namespace: "shop", ServiceAccount: "web", TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	nsOnly, _ := Create(ctx, st, CreateOptions{Name: "shop", Namespace: "shop"}, now)
	short, _ := Create(ctx, st, CreateOptions{Name: "short", TTL: time.Minute}, now)
	gone, _ := Create(ctx, st, CreateOptions{Name: "gone"}, now)
	if _, err := Revoke(ctx, st, "gone", now); err != nil {
		t.Fatal(err)
	}
	if d := any.Expires.Sub(now); d < DefaultTTL-time.Second || d > DefaultTTL+time.Second {
		t.Errorf("default ttl %s", d)
	}

	later := now.Add(2 * time.Minute)
	for _, tc := range []struct {
		name, secret, ns, sa string
		at                   time.Time
		want                 error // nil: accepted
		msg                  string
	}{
		{"default token", "default-secret", "any", "thing", later, nil, ""},
		{"unscoped", any.Secret, "default", "web", later, nil, ""},
		{"scoped, in scope", scoped.Secret, "shop", "web", later, nil, ""},
		{"scoped, other sa", scoped.Secret, "shop", "admin", later, ErrScope, `token "shop-web" is for service account "web", not "admin"`},
		{"scoped, other ns", scoped.Secret, "default", "web", later, ErrScope, `is for namespace "shop", not "default"`},
		{"namespace scope, any sa", nsOnly.Secret, "shop", "db", later, nil, ""},
		{"namespace scope, other ns", nsOnly.Secret, "bank", "db", later, ErrScope, "namespace"},
		{"expired", short.Secret, "a", "b", later, ErrExpired, `token "short" expired at`},
		{"not yet expired", short.Secret, "a", "b", now, nil, ""},
		{"revoked", gone.Secret, "a", "b", now, ErrRevoked, `token "gone" was revoked at`},
		{"garbage", "not-a-secret", "a", "b", now, ErrUnknown, "unknown join token"},
		{"empty", "", "a", "b", now, ErrUnknown, "unknown"},
		{"admin token is no join token", "admin-secret", "a", "b", now, ErrUnknown, "unknown"},
		{"prefix of a secret", any.Secret[:20], "a", "b", now, ErrUnknown, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(ctx, st, tc.secret, tc.ns, tc.sa, tc.at)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Now()
	if _, err := Create(ctx, st, CreateOptions{Name: "admin"}, now); err == nil {
		t.Error("made a token named admin")
	}
	if _, err := Create(ctx, st, CreateOptions{Name: "Bad_Name"}, now); err == nil {
		t.Error("accepted a bad name")
	}
	if _, err := Create(ctx, st, CreateOptions{TTL: -time.Second}, now); err == nil {
		t.Error("accepted a negative ttl")
	}
	a, err := Create(ctx, st, CreateOptions{}, now)
	if err != nil || !strings.HasPrefix(a.Name, "t-") {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := Create(ctx, st, CreateOptions{Name: a.Name}, now); !errors.Is(err, ErrExists) {
		t.Errorf("second token of one name: %v", err)
	}
	b, _ := Create(ctx, st, CreateOptions{Name: "b"}, now)
	st.Put(ctx, []store.Write{{Object: store.Object{Kind: Kind, Namespace: Namespace, Name: AdminName, Data: []byte(`{"token":"x"}`)}}})
	recs, err := List(ctx, st)
	if err != nil || len(recs) != 2 || recs[0].Name != "b" || recs[1].Name != a.Name {
		t.Fatalf("list: %v %v", recs, err)
	}
	if _, err := Revoke(ctx, st, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke of a missing token: %v", err)
	}
	if _, err := Revoke(ctx, st, AdminName, now); err == nil {
		t.Error("revoked the admin token")
	}
	r, err := Revoke(ctx, st, "b", now)
	if err != nil || r.State(now) != "revoked" {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if r2, err := Revoke(ctx, st, "b", now.Add(time.Hour)); err != nil || !r2.Revoked.Equal(*r.Revoked) {
		t.Errorf("second revoke: %+v %v", r2, err)
	}
	if _, err := Check(ctx, st, b.Secret, "a", "b", now); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked token: %v", err)
	}
}
