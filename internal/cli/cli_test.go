package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
)

func TestFormatDetail(t *testing.T) {
	for _, tc := range []struct {
		d    api.Detail
		want string
	}{
		{api.Detail{File: "mesh.yaml", Document: 2, Kind: "HTTPRoute", Name: "r", Field: "spec.rules[0]", Reason: "bad"},
			`mesh.yaml: document 2 (HTTPRoute "r"): spec.rules[0]: bad`},
		{api.Detail{File: "mesh.yaml", Document: 1, Kind: "Service", Namespace: "shop", Name: "s", Reason: "not found"},
			`mesh.yaml: document 1 (Service "shop/s"): not found`},
		{api.Detail{File: "x.yaml", Document: 3, Reason: "line 4: did not find expected key"},
			`x.yaml: document 3: line 4: did not find expected key`},
		{api.Detail{Reason: "just a reason"}, `just a reason`},
	} {
		if got := FormatDetail(tc.d); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestSplitRef(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		kind, name string
		err        bool
	}{
		{[]string{"svc"}, "svc", "", false},
		{[]string{"svc/reviews"}, "svc", "reviews", false},
		{[]string{"svc", "reviews"}, "svc", "reviews", false},
		{[]string{"svc/a", "b"}, "", "", true},
		{[]string{"a", "b", "c"}, "", "", true},
	} {
		k, n, err := SplitRef(tc.args)
		if k != tc.kind || n != tc.name || (err != nil) != tc.err {
			t.Errorf("SplitRef(%v) = %q %q %v", tc.args, k, n, err)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 5 * time.Second: "5s", 119 * time.Second: "119s", 3 * time.Minute: "3m",
		5 * time.Hour: "5h", 72 * time.Hour: "3d",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.yml", "c.json", "notes.txt", "sub/d.yaml"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	names := func(fs []File) string {
		var out []string
		for _, f := range fs {
			out = append(out, strings.TrimPrefix(f.Name, dir+"/"))
		}
		return strings.Join(out, " ")
	}
	fs, err := ReadFiles([]string{dir}, false, nil)
	if err != nil || names(fs) != "a.yml b.yaml c.json" {
		t.Errorf("dir: %s %v", names(fs), err)
	}
	fs, err = ReadFiles([]string{dir}, true, nil)
	if err != nil || names(fs) != "a.yml b.yaml c.json sub/d.yaml" {
		t.Errorf("dir -R: %s %v", names(fs), err)
	}
	fs, err = ReadFiles([]string{"-", filepath.Join(dir, "notes.txt")}, false, strings.NewReader("from stdin"))
	if err != nil || names(fs) != "<stdin> notes.txt" || string(fs[0].Data) != "from stdin" {
		t.Errorf("stdin and a file: %s %v", names(fs), err)
	}
	if _, err := ReadFiles([]string{filepath.Join(dir, "missing.yaml")}, false, nil); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := ReadFiles([]string{t.TempDir()}, false, nil); err == nil {
		t.Error("empty dir accepted")
	}
}

// The client against the real API over a real store.
func TestClientAgainstAPI(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := api.New(api.Options{Store: st, StoreName: "bolt", AdminToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c, err := NewClient(Flags{Server: hs.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec:\n  ports: [{port: 80}]\n"
	var out bytes.Buffer
	if err := c.Apply(ctx, []File{{"web.yaml", []byte(svc)}}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "service/web -n shop created\n" {
		t.Errorf("apply printed %q", out.String())
	}

	out.Reset()
	now := time.Now().Add(90 * time.Second)
	if err := c.Get(ctx, GetOptions{Kind: "svc", Output: "wide", Now: now}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAMESPACE NAME VERSION AGE SOURCE ADDRESS LABELS" {
		t.Fatalf("get -o wide:\n%s", out.String())
	}
	if f := strings.Fields(lines[1]); len(f) != 7 || f[0] != "shop" || f[1] != "web" || !strings.HasSuffix(f[3], "s") || f[4] != "applied" || f[6] != "app=web" {
		t.Errorf("row %q", lines[1])
	}

	out.Reset()
	if err := c.Get(ctx, GetOptions{Kind: "service", Name: "web", Namespace: "shop", Output: "yaml"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "resourceVersion: \"") || !strings.Contains(out.String(), "namespace: shop") {
		t.Errorf("get -o yaml:\n%s", out.String())
	}
	// Without -n, a name is looked up in "default".
	err = c.Get(ctx, GetOptions{Kind: "service", Name: "web"}, &out)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("get in the default namespace: %v", err)
	}

	// An invalid apply prints one line per problem.
	err = c.Apply(ctx, []File{{"bad.yaml", []byte(strings.Replace(svc, "port: 80", "port: 0", 1))}}, &out)
	if err == nil || !strings.Contains(err.Error(), "\nbad.yaml: document 1 (Service \"web\"): spec.ports[0].port: ") {
		t.Errorf("invalid apply error:\n%v", err)
	}

	out.Reset()
	if err := c.Status(ctx, "", &out, &out); err != nil || !strings.Contains(out.String(), "No proxies connected (store bolt") {
		t.Errorf("status: %q %v", out.String(), err)
	}
	out.Reset()
	if err := c.Delete(ctx, "services", "shop", "web", &out); err != nil || out.String() != "service/web -n shop deleted\n" {
		t.Errorf("delete: %q %v", out.String(), err)
	}

	// A wrong token and an unreachable server are errors people can act on.
	bad, _ := NewClient(Flags{Server: hs.URL, Token: "nope"})
	if err := bad.Status(ctx, "", &out, &out); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("wrong token: %v", err)
	}
	gone, _ := NewClient(Flags{Server: "127.0.0.1:1", Token: "tok"})
	if err := gone.Status(ctx, "", &out, &out); err == nil || !strings.Contains(err.Error(), "control plane at http://127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
}

func TestNewClientFromContext(t *testing.T) {
	home := t.TempDir()
	t.Setenv(api.EnvHome, home)
	if _, err := NewClient(Flags{}); err == nil || !strings.Contains(err.Error(), "no CLI context") {
		t.Errorf("no context: %v", err)
	}
	api.WriteClientConfig(api.ConfigPath(home), api.ClientConfig{Server: "http://127.0.0.1:9", Token: "from-file"})
	c, err := NewClient(Flags{})
	if err != nil || c.Server != "http://127.0.0.1:9" || c.token != "from-file" {
		t.Errorf("from context: %+v %v", c, err)
	}
	c, err = NewClient(Flags{Token: "flag"})
	if err != nil || c.Server != "http://127.0.0.1:9" || c.token != "flag" {
		t.Errorf("flag overrides: %+v %v", c, err)
	}
}
