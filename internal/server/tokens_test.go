package server

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// writeKeys writes a PEM key pair for the key priv and returns the two paths.
func writeKeys(t *testing.T, priv any, pub any) (string, string) {
	t.Helper()
	dir := t.TempDir()
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return privPath, pubPath
}

func rsaJWT(t *testing.T, extra string) tokenProvider {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub := writeKeys(t, k, &k.PublicKey)
	tp, err := newTokenProvider("jwt,pub-key="+pub+",priv-key="+priv+",sign-method=RS256"+extra, 300)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

var anyState = &auth.State{} // JWTs do not look at the state

// TestJWTRefusesForgeries: a JWT resolves only when its signature is the configured
// key's, with the configured method, and it has not expired.
func TestJWTRefusesForgeries(t *testing.T) {
	tp := rsaJWT(t, ",ttl=1h")
	tok, err := tp.assign("alice", 7, &authpb.User{})
	if err != nil {
		t.Fatal(err)
	}
	if ai, ok := tp.info(tok, anyState); !ok || ai.Username != "alice" || ai.Revision != 7 {
		t.Fatalf("genuine token: %v %v", ai, ok)
	}
	parts := strings.Split(tok, ".")
	// Tampered payload, same signature.
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(claims), "alice", "root", 1)
	if _, ok := tp.info(parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(forged))+"."+parts[2], anyState); ok {
		t.Error("tampered payload accepted")
	}
	// Tampered signature.
	sig := []byte(parts[2])
	sig[5] ^= 1
	if _, ok := tp.info(parts[0]+"."+parts[1]+"."+string(sig), anyState); ok {
		t.Error("tampered signature accepted")
	}
	// Signed by another key.
	other := rsaJWT(t, "")
	otok, _ := other.assign("alice", 7, &authpb.User{})
	if _, ok := tp.info(otok, anyState); ok {
		t.Error("token of another key accepted")
	}
	// alg=none.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"username": "root", "revision": 7,
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.info(none, anyState); ok {
		t.Error("alg=none accepted")
	}
	// HS256 signed with the public key as secret (algorithm confusion).
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"username": "root", "revision": 7,
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("guessed"))
	if _, ok := tp.info(hs, anyState); ok {
		t.Error("HS256 accepted by an RS256 provider")
	}
	// Expired.
	expired := rsaJWT(t, ",ttl=-1s")
	etok, _ := expired.assign("alice", 7, &authpb.User{})
	if _, ok := expired.info(etok, anyState); ok {
		t.Error("expired token accepted")
	}
}

// TestJWTMethods: each family etcd supports signs and verifies.
func TestJWTMethods(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		method    string
		priv, pub any
	}{{"ES256", ec, &ec.PublicKey}, {"EdDSA", edPriv, edPub}, {"PS256", rs, &rs.PublicKey}, {"RS512", rs, &rs.PublicKey}} {
		priv, pub := writeKeys(t, tc.priv, tc.pub)
		tp, err := newTokenProvider("jwt,pub-key="+pub+",priv-key="+priv+",sign-method="+tc.method, 300)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		tok, err := tp.assign("u", 3, &authpb.User{})
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if ai, ok := tp.info(tok, anyState); !ok || ai.Username != "u" {
			t.Errorf("%s: %v %v", tc.method, ai, ok)
		}
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("a shared secret"), 0o600)
	tp, err := newTokenProvider("jwt,priv-key="+secret+",sign-method=HS256", 300)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tp.assign("u", 3, &authpb.User{})
	if _, ok := tp.info(tok, anyState); !ok {
		t.Error("HS256")
	}
	for _, bad := range []string{"jwt,sign-method=none", "jwt,sign-method=RS256", "bogus", "jwt,pub-key"} {
		if _, err := newTokenProvider(bad, 300); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzTokenInfo: no string resolves to a user but the tokens issued.
func FuzzTokenInfo(f *testing.F) {
	simple := newSimpleTokens(time.Hour)
	u := &authpb.User{Name: []byte("u"), Password: []byte("hash")}
	st := stateWith(f, u)
	real, _ := simple.assign("u", 1, u)
	simple.register(real, u)
	if _, ok := simple.info(real, st); !ok {
		f.Fatal("the issued token does not resolve")
	}
	for _, s := range []string{"", real, real + "x", strings.Split(real, ".")[0], "a.1", "Bearer " + real, "\x00", "eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, ok := simple.info(s, st); ok && s != real {
			t.Fatalf("%q resolved", s)
		}
	})
}

// stateWith is an auth state holding users.
func stateWith(t testing.TB, users ...*authpb.User) *auth.State {
	t.Helper()
	eng, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	b := eng.NewBatch()
	for _, u := range users {
		v, _ := proto.Marshal(u)
		b.Set(storage.AuthUserKey(string(u.Name)), v)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	st, err := auth.Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSimpleTokenDiesWithPassword: a simple token stops resolving once its user is
// gone or has another password hash.
func TestSimpleTokenDiesWithPassword(t *testing.T) {
	tp := newSimpleTokens(time.Hour)
	u := &authpb.User{Name: []byte("u"), Password: []byte("h1")}
	tok, _ := tp.assign("u", 1, u)
	if _, ok := tp.info(tok, stateWith(t, u)); ok {
		t.Fatal("a token never registered resolves")
	}
	tp.register(tok, u)
	if _, ok := tp.info(tok, stateWith(t, u)); !ok {
		t.Fatal("fresh token refused")
	}
	if _, ok := tp.info(tok, stateWith(t, &authpb.User{Name: []byte("u"), Password: []byte("h2")})); ok {
		t.Error("token survived a password change")
	}
	tok, _ = tp.assign("u", 1, u)
	tp.register(tok, u)
	if _, ok := tp.info(tok, stateWith(t)); ok {
		t.Error("token survived its user")
	}
}
