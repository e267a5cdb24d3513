package server

import (
	"context"
	"encoding/base64"
	"runtime"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastore/metastore/internal/auth"
)

// The Auth service and the permission checks of the request path (etcd v3.7.3's
// v3_server.go). The replicated users, roles and permissions are internal/auth's,
// applied by apply; this file hashes passwords before they are proposed (bcrypt is
// random and slow: apply stays deterministic and cheap), checks passwords and issues
// tokens (tokens.go), and tells apply who makes each proposal: the user and auth
// revision go in the request header, and apply refuses a request whose revision is
// older than the store's (auth.ErrAuthOldRevision).

// Auth errors, the same sentinels as internal/auth's (so they need no translation).
var (
	ErrAuthRootUserNotExist     = auth.ErrRootUserNotExist
	ErrAuthRootRoleNotExist     = auth.ErrRootRoleNotExist
	ErrAuthUserAlreadyExist     = auth.ErrUserAlreadyExist
	ErrAuthUserEmpty            = auth.ErrUserEmpty
	ErrAuthUserNotFound         = auth.ErrUserNotFound
	ErrAuthRoleAlreadyExist     = auth.ErrRoleAlreadyExist
	ErrAuthRoleNotFound         = auth.ErrRoleNotFound
	ErrAuthRoleEmpty            = auth.ErrRoleEmpty
	ErrAuthPermissionNotGiven   = auth.ErrPermissionNotGiven
	ErrAuthFailed               = auth.ErrAuthFailed
	ErrAuthNoPasswordUser       = auth.ErrNoPasswordUser
	ErrAuthPermissionDenied     = auth.ErrPermissionDenied
	ErrAuthRoleNotGranted       = auth.ErrRoleNotGranted
	ErrAuthPermissionNotGranted = auth.ErrPermissionNotGranted
	ErrAuthNotEnabled           = auth.ErrAuthNotEnabled
	ErrAuthOldRevision          = auth.ErrAuthOldRevision
	ErrAuthInvalidToken         = auth.ErrInvalidAuthToken
	ErrAuthInvalidMgmt          = auth.ErrInvalidAuthMgmt
)

// AuthConfig is the auth part of Config.
type AuthConfig struct {
	// Token is etcd's --auth-token: "simple" (default) or "jwt,pub-key=…,…".
	Token string
	// TokenTTL is --auth-token-ttl, seconds (default 300) of a simple token.
	TokenTTL uint
	// BcryptCost is --bcrypt-cost (default bcrypt.DefaultCost).
	BcryptCost int
	// ClientCertAuth (--client-cert-auth): a client certificate's CN is the user when
	// the request carries no token.
	ClientCertAuth bool
}

// Credentials are what a client presented: the token of its metadata ("token" or
// "authorization"), and the CN of its verified client certificate. grpcapi attaches
// them to every request's context (WithCredentials).
type Credentials struct {
	Token      string
	CommonName string
	// Gateway marks a request of the gRPC gateway, whose certificate CN is never a user.
	Gateway bool
}

type credKey struct{}

// WithCredentials returns ctx carrying c: it marks the request as a client's, checked
// against its user. A context without it is the server's own (lease expiry, alarms,
// cluster version), proposed as root.
func WithCredentials(ctx context.Context, c Credentials) context.Context {
	return context.WithValue(ctx, credKey{}, c)
}

// authServer is the server's side of auth: tokens and the bcrypt bound.
type authServer struct {
	cfg    AuthConfig
	tokens tokenProvider
	// bcryptSem bounds the password checks running at once (GOMAXPROCS), so that
	// Authenticate (bcrypt costs tens of milliseconds of CPU on purpose) cannot pile
	// up unbounded CPU work and starve other requests.
	bcryptSem chan struct{}
}

func newAuthServer(cfg AuthConfig) (*authServer, error) {
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 300
	}
	tp, err := newTokenProvider(cfg.Token, cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	// As many comparisons as cores: a flood of logins queues here instead of
	// multiplying the CPU work in flight, and the Go scheduler still interleaves the
	// other requests' goroutines with them.
	n := max(runtime.GOMAXPROCS(0), 1)
	return &authServer{cfg: cfg, tokens: tp, bcryptSem: make(chan struct{}, n)}, nil
}

// installTokenListener registers, on every member, the simple tokens that applied
// Authenticate requests carry. Called by New before the apply loop starts.
func (s *Server) installTokenListener() {
	s.app.SetTokenListener(func(user, token string) {
		st, ok := s.authz().tokens.(*simpleTokens)
		if !ok {
			return
		}
		if u := s.app.Auth().User(user); u != nil {
			st.register(token, u)
		}
	})
}

// CheckAuthConfig refuses an --auth-token this member cannot use (unknown type, bad
// JWT options or keys), as etcd refuses to start with one.
func CheckAuthConfig(cfg AuthConfig) error {
	_, err := newAuthServer(cfg)
	return err
}

// authInfo resolves who makes the request of ctx: ok is false for the server's own
// requests (no Credentials). With auth disabled, a client is nobody (zero Info).
func (s *Server) authInfo(ctx context.Context) (ai auth.Info, client bool, err error) {
	c, ok := ctx.Value(credKey{}).(Credentials)
	if !ok {
		return auth.Info{}, false, nil
	}
	st := s.app.Auth()
	if !st.Enabled() {
		return auth.Info{}, true, nil
	}
	if c.Token != "" {
		ai, ok := s.authz().tokens.info(c.Token, st)
		if !ok {
			return auth.Info{}, true, auth.ErrInvalidAuthToken
		}
		return ai, true, nil
	}
	if c.CommonName != "" && !c.Gateway && s.authz().cfg.ClientCertAuth {
		return auth.Info{Username: c.CommonName, Revision: st.Revision()}, true, nil
	}
	return auth.Info{}, true, nil
}

// authz returns the auth server, built with the defaults if New was not given one.
func (s *Server) authz() *authServer {
	s.authOnce.Do(func() {
		if s.authSrv == nil {
			a, err := newAuthServer(s.cfg.Auth)
			if err != nil {
				s.lg.Error("auth: bad token configuration, using simple tokens")
				a, _ = newAuthServer(AuthConfig{BcryptCost: s.cfg.Auth.BcryptCost, TokenTTL: s.cfg.Auth.TokenTTL})
			}
			s.authSrv = a
		}
	})
	return s.authSrv
}

// fillAuthHeader puts the user of ctx into a proposal's header. The server's own
// proposals go as root at the newest revision: root cannot lose its role while auth
// is enabled.
func (s *Server) fillAuthHeader(ctx context.Context, h *pb.RequestHeader) error {
	ai, client, err := s.authInfo(ctx)
	if err != nil {
		return err
	}
	if !client {
		h.Username, h.AuthRevision = auth.RootUser, ^uint64(0)
		return nil
	}
	h.Username, h.AuthRevision = ai.Username, ai.Revision
	return nil
}

// checkAuth runs chk on the current auth state with the user of ctx, for requests
// served without a proposal (reads, watches, maintenance). The server's own requests
// pass.
func (s *Server) checkAuth(ctx context.Context, chk func(st *auth.State, ai auth.Info) error) error {
	st := s.app.Auth()
	if !st.Enabled() {
		return nil
	}
	ai, client, err := s.authInfo(ctx)
	if err != nil || !client {
		return err
	}
	return chk(st, ai)
}

// CheckRange is the read permission check of a range or watch over [key, rangeEnd).
func (s *Server) CheckRange(ctx context.Context, key, rangeEnd []byte) error {
	return s.checkAuth(ctx, func(st *auth.State, ai auth.Info) error { return st.CanRead(ai, key, rangeEnd) })
}

// CheckAdmin is etcd's IsAdminPermitted with the user of ctx: root only once auth is
// enabled (maintenance, member changes).
func (s *Server) CheckAdmin(ctx context.Context) error {
	return s.checkAuth(ctx, func(st *auth.State, ai auth.Info) error { return st.IsAdmin(ai.Username) })
}

// RequireUser is etcd's requireAuthInfo: any known caller once auth is enabled
// (Status, Alarm GET).
func (s *Server) RequireUser(ctx context.Context) error {
	return s.checkAuth(ctx, func(st *auth.State, ai auth.Info) error {
		if ai.Username == "" {
			return auth.ErrUserEmpty
		}
		return nil
	})
}

// checkReadTxn checks a txn served locally (read-only).
func (s *Server) checkTxn(ctx context.Context, r *pb.TxnRequest) error {
	return s.checkAuth(ctx, func(st *auth.State, ai auth.Info) error {
		return st.CheckTxn(ai, r, func(id int64) [][]byte { ks, _ := s.app.Leases().Keys(id); return ks })
	})
}

// hashPassword is what a UserAdd or UserChangePassword proposes: the bcrypt hash,
// base64 (as etcd's HashedPassword), never the password. A request that already
// carries only a hash keeps it once it is checked to be one.
func (s *Server) hashPassword(password, hashed string) (string, error) {
	if password == "" && hashed != "" {
		h, err := base64.StdEncoding.DecodeString(hashed)
		if err != nil {
			return "", auth.ErrNoPasswordUser
		}
		if _, err := bcrypt.Cost(h); err != nil {
			return "", auth.ErrNoPasswordUser
		}
		return hashed, nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.authz().cfg.BcryptCost)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// CheckTxn checks a txn before it is served or proposed (etcd's checkTxnAuth).
func (s *Server) CheckTxn(ctx context.Context, r *pb.TxnRequest) error { return s.checkTxn(ctx, r) }

// CheckLeaseKeys is etcd's check of a LeaseTimeToLive with keys (checkLeaseTimeToLive)
// and, for id 0, of LeaseLeases: root, or read on every key attached to lease id, or
// to any lease.
func (s *Server) CheckLeaseKeys(ctx context.Context, id int64) error {
	return s.checkAuth(ctx, func(st *auth.State, ai auth.Info) error {
		if st.IsAdmin(ai.Username) == nil {
			return nil
		}
		var ks [][]byte
		if id != 0 {
			ks, _ = s.app.Leases().Keys(id)
		} else {
			for _, l := range s.app.Leases().List() {
				lk, _ := s.app.Leases().Keys(l.ID)
				ks = append(ks, lk...)
			}
		}
		for _, k := range ks {
			if err := st.CanRead(ai, k, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// CheckLeaseRenew is etcd's checkLeaseRenew, for each keep-alive: a user, and root or
// write permission on every key attached to lease id.
func (s *Server) CheckLeaseRenew(ctx context.Context, id int64) error {
	return s.checkAuth(ctx, func(st *auth.State, ai auth.Info) error {
		if ai.Username == "" {
			return auth.ErrUserEmpty
		}
		return st.CheckLeaseKeys(ai, id, func(id int64) [][]byte { ks, _ := s.app.Leases().Keys(id); return ks })
	})
}

// AuthRevision is the applied auth revision, 0 while auth is disabled.
func (s *Server) AuthRevision() uint64 {
	if st := s.app.Auth(); st.Enabled() {
		return st.Revision()
	}
	return 0
}
