package server

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.etcd.io/etcd/api/v3/authpb"

	"github.com/metastore/metastore/internal/auth"
)

// ErrAuthTokenOptions refuses an --auth-token this build cannot use.
var ErrAuthTokenOptions = errors.New("auth: invalid auth options")

// tokenProvider issues and resolves tokens (etcd's simple and jwt providers).
type tokenProvider interface {
	// assign issues a token for user u at auth revision rev. A simple token is only
	// made here: it is valid once register is called (on every member, as the
	// Authenticate proposal is applied); simple reports which kind it is.
	assign(user string, rev uint64, u *authpb.User) (string, error)
	simple() bool
	// info resolves a token against the current auth state.
	info(token string, st *auth.State) (auth.Info, bool)
}

func newTokenProvider(spec string, ttlSeconds uint) (tokenProvider, error) {
	parts := strings.Split(spec, ",")
	switch parts[0] {
	case "", "simple":
		return newSimpleTokens(time.Duration(ttlSeconds) * time.Second), nil
	case "jwt":
		return newJWTTokens(parts[1:])
	default:
		return nil, fmt.Errorf("%w: unknown token type %q", ErrAuthTokenOptions, parts[0])
	}
}

// simpleTokens are member-local random tokens ("<16 letters>.<n>", as etcd's) that
// live TTL after their last use. A token dies with its user and with a change of the
// user's password.
type simpleTokens struct {
	ttl time.Duration
	mu  sync.Mutex
	n   uint64
	tok map[string]*simpleToken
}

type simpleToken struct {
	user     string
	password []byte // the hash when issued
	expires  time.Time
}

func newSimpleTokens(ttl time.Duration) *simpleTokens {
	return &simpleTokens{ttl: ttl, tok: map[string]*simpleToken{}}
}

const tokenLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func (t *simpleTokens) simple() bool { return true }

func (t *simpleTokens) assign(string, uint64, *authpb.User) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = tokenLetters[int(b[i])%len(tokenLetters)]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	return string(b[:]) + "." + strconv.FormatUint(t.n, 10), nil
}

// register makes tok valid for user u, whose password hash it keeps.
func (t *simpleTokens) register(tok string, u *authpb.User) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tok[tok] = &simpleToken{user: string(u.Name), password: u.Password, expires: now.Add(t.ttl)}
	if t.n%1024 == 0 { // drop the expired now and then: the map stays bounded by use
		for k, v := range t.tok {
			if now.After(v.expires) {
				delete(t.tok, k)
			}
		}
	}
}

func (t *simpleTokens) info(token string, st *auth.State) (auth.Info, bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.tok[token]
	if v == nil {
		return auth.Info{}, false
	}
	u := st.User(v.user)
	if now.After(v.expires) || u == nil || !bytes.Equal(u.Password, v.password) {
		delete(t.tok, token)
		return auth.Info{}, false
	}
	v.expires = now.Add(t.ttl)
	return auth.Info{Username: v.user, Revision: st.Revision()}, true
}

// jwtTokens are signed JSON web tokens with the claims username, revision and exp,
// as etcd's: valid on every member that has the public key.
type jwtTokens struct {
	method  jwt.SigningMethod
	signKey any // nil: verify only
	verKey  any
	ttl     time.Duration
}

func newJWTTokens(opts []string) (*jwtTokens, error) {
	kv := map[string]string{}
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrAuthTokenOptions, o)
		}
		kv[k] = v
	}
	t := &jwtTokens{ttl: 5 * time.Minute}
	if s, ok := kv["ttl"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%w: ttl %q", ErrAuthTokenOptions, s)
		}
		t.ttl = d
	}
	t.method = jwt.GetSigningMethod(kv["sign-method"])
	if t.method == nil || t.method == jwt.SigningMethodNone {
		return nil, fmt.Errorf("%w: sign-method %q", ErrAuthTokenOptions, kv["sign-method"])
	}
	read := func(name string) ([]byte, error) {
		if kv[name] == "" {
			return nil, nil
		}
		return os.ReadFile(kv[name])
	}
	pub, err := read("pub-key")
	if err != nil {
		return nil, err
	}
	priv, err := read("priv-key")
	if err != nil {
		return nil, err
	}
	switch t.method.(type) {
	case *jwt.SigningMethodHMAC:
		if priv == nil {
			return nil, fmt.Errorf("%w: %s needs priv-key", ErrAuthTokenOptions, t.method.Alg())
		}
		t.signKey, t.verKey = priv, priv
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		err = t.keys(pub, priv, func(b []byte) (any, error) { return jwt.ParseRSAPublicKeyFromPEM(b) },
			func(b []byte) (any, error) { return jwt.ParseRSAPrivateKeyFromPEM(b) })
	case *jwt.SigningMethodECDSA:
		err = t.keys(pub, priv, func(b []byte) (any, error) { return jwt.ParseECPublicKeyFromPEM(b) },
			func(b []byte) (any, error) { return jwt.ParseECPrivateKeyFromPEM(b) })
	case *jwt.SigningMethodEd25519:
		err = t.keys(pub, priv, func(b []byte) (any, error) { return jwt.ParseEdPublicKeyFromPEM(b) },
			func(b []byte) (any, error) { return jwt.ParseEdPrivateKeyFromPEM(b) })
	default:
		return nil, fmt.Errorf("%w: sign-method %q", ErrAuthTokenOptions, t.method.Alg())
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *jwtTokens) keys(pub, priv []byte, parsePub, parsePriv func([]byte) (any, error)) error {
	if pub == nil {
		return fmt.Errorf("%w: %s needs pub-key", ErrAuthTokenOptions, t.method.Alg())
	}
	k, err := parsePub(pub)
	if err != nil {
		return fmt.Errorf("%w: pub-key: %v", ErrAuthTokenOptions, err)
	}
	t.verKey = k
	if priv != nil {
		if t.signKey, err = parsePriv(priv); err != nil {
			return fmt.Errorf("%w: priv-key: %v", ErrAuthTokenOptions, err)
		}
	}
	return nil
}

func (t *jwtTokens) simple() bool { return false }

func (t *jwtTokens) assign(user string, rev uint64, _ *authpb.User) (string, error) {
	if t.signKey == nil {
		return "", errors.New("auth: token signing attempted with verify-only key")
	}
	tok := jwt.NewWithClaims(t.method, jwt.MapClaims{
		"username": user,
		"revision": rev,
		"exp":      time.Now().Add(t.ttl).Unix(),
	})
	return tok.SignedString(t.signKey)
}

func (t *jwtTokens) info(token string, _ *auth.State) (auth.Info, bool) {
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return t.verKey, nil },
		jwt.WithValidMethods([]string{t.method.Alg()}), jwt.WithExpirationRequired())
	if err != nil || !parsed.Valid {
		return auth.Info{}, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok {
		return auth.Info{}, false
	}
	user, ok1 := claims["username"].(string)
	rev, ok2 := claims["revision"].(float64)
	if !ok1 || !ok2 || user == "" {
		return auth.Info{}, false
	}
	return auth.Info{Username: user, Revision: uint64(rev)}, true
}
