package grpcapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

// FuzzCredentials: whatever a client puts in "token" or "authorization", the guard
// passes on exactly that token ("Bearer " dropped from authorization), "token" first,
// and never a certificate CN it did not verify.
func FuzzCredentials(f *testing.F) {
	for _, s := range [][2]string{{"abc.1", ""}, {"", "Bearer abc.1"}, {"", "abc"}, {"x", "Bearer y"}, {"", "Bearer "}, {"\x00", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, token, authz string) {
		md := metadata.MD{}
		if token != "" {
			md.Set("token", token)
		}
		if authz != "" {
			md.Set("authorization", authz)
		}
		c := credentialsOf(metadata.NewIncomingContext(context.Background(), md))
		want := ""
		switch {
		case token != "":
			want = token
		case authz != "":
			want = strings.TrimPrefix(authz, "Bearer ")
		}
		if c.Token != want || c.CommonName != "" || c.Gateway {
			t.Fatalf("token %q authorization %q: %+v, want token %q", token, authz, c, want)
		}
	})
}
