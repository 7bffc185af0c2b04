package meshv1

import "testing"

func TestParseServiceRef(t *testing.T) {
	tests := []struct {
		ref, want string
		ok        bool
	}{
		{"reviews", "default/reviews", true},
		{"reviews:9080", "default/reviews", true},
		{"Reviews.Prod", "prod/reviews", true},
		{"reviews.prod.svc", "prod/reviews", true},
		{"reviews.prod.svc.cluster.local", "prod/reviews", true},
		{"reviews.prod.svc.cluster.local.:80", "prod/reviews", true},
		{"api.example.com", "", false},
		{"", "", false},
		{"-x", "", false},
		{"a_b", "", false},
	}
	for _, tt := range tests {
		ns, name, ok := ParseServiceRef(tt.ref, "default")
		got := ""
		if ok {
			got = ns + "/" + name
		}
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseServiceRef(%q) = %q, %v; want %q, %v", tt.ref, got, ok, tt.want, tt.ok)
		}
	}
}
