package integration

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// authCluster starts one member of b with auth set up as etcd's tests do: a root user
// with the root role, then auth enabled. The bcrypt cost is bcrypt's minimum, so that
// the many users of the tests log in fast.
func authCluster(t *testing.T, b binary, extra ...string) (*cluster, *clientv3.Client) {
	t.Helper()
	c := newCluster(t, b, 1, append([]string{"--bcrypt-cost", "4"}, extra...)...)
	cli := c.client()
	ctx := ctxT(t)
	must(t, func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err })
	must(t, func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err })
	must(t, func() error { _, err := cli.AuthEnable(ctx); return err })
	return c, c.userClient("root", "rootpw")
}

func must(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// userClient logs in as user (an empty user: no credentials).
func (c *cluster) userClient(user, password string) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// errDesc is what a cell of the table records: "ok", or the error etcd's client sees.
func errDesc(err error) string {
	if err == nil {
		return "ok"
	}
	s := rpctypes.ErrorDesc(err)
	if i := strings.Index(s, "desc = "); i >= 0 { // a watch's cancel reason holds the status text
		s = s[i+len("desc = "):]
	}
	return s
}

// TestAuthPermissionTable: every RPC that etcd checks, by every kind of permission
// (none, read, write, readwrite, root) on a key, a range and a prefix. The expected
// answer of each cell follows etcd's rules (a model below); the test passes against
// real etcd too, which checks the model.
func TestAuthPermissionTable(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c, root := authCluster(t, b)
		ctx := ctxT(t)
		type scope struct {
			name     string
			key, end string
			begin    string // interval [begin, stop) the scope covers
			stop     string
		}
		scopes := []scope{
			{"key", "k", "", "k", "k\x00"},
			{"range", "r1", "r5", "r1", "r5"},
			{"prefix", "p/", "p0", "p/", "p0"},
		}
		type user struct {
			name        string
			read, write bool
			root        bool
			sc          scope
		}
		users := []user{{name: "none"}, {name: "admin", root: true, read: true, write: true}}
		for _, sc := range scopes {
			for _, perm := range []string{"read", "write", "readwrite"} {
				users = append(users, user{name: perm + "-" + sc.name, sc: sc,
					read: perm != "write", write: perm != "read"})
			}
		}
		for _, u := range users {
			must(t, func() error { _, err := root.UserAdd(ctx, u.name, "pw"); return err })
			if u.root {
				must(t, func() error { _, err := root.UserGrantRole(ctx, u.name, "root"); return err })
				continue
			}
			if u.sc.name == "" {
				continue
			}
			typ := map[[2]bool]clientv3.PermissionType{{true, false}: clientv3.PermissionType(clientv3.PermRead), {false, true}: clientv3.PermissionType(clientv3.PermWrite),
				{true, true}: clientv3.PermissionType(clientv3.PermReadWrite)}[[2]bool{u.read, u.write}]
			must(t, func() error { _, err := root.RoleAdd(ctx, "role-"+u.name); return err })
			must(t, func() error {
				_, err := root.RoleGrantPermission(ctx, "role-"+u.name, u.sc.key, u.sc.end, typ)
				return err
			})
			must(t, func() error { _, err := root.UserGrantRole(ctx, u.name, "role-"+u.name); return err })
		}
		for _, k := range []string{"k", "r2", "p/x"} {
			must(t, func() error { _, err := root.Put(ctx, k, "v"); return err })
		}

		// covers: does the user's scope cover [begin, stop) ("" stop: one key)?
		covers := func(u user, begin, stop string) bool {
			if u.root {
				return true
			}
			if u.sc.name == "" {
				return false
			}
			if stop == "" {
				stop = begin + "\x00"
			}
			return u.sc.begin <= begin && (stop <= u.sc.stop)
		}
		denied := errDesc(rpctypes.ErrGRPCPermissionDenied)
		want := func(ok bool) string {
			if ok {
				return "ok"
			}
			return denied
		}
		type op struct {
			name string
			do   func(cli *clientv3.Client) error
			want func(u user) string
		}
		read := func(begin, stop string) func(u user) string {
			return func(u user) string { return want(u.read && covers(u, begin, stop)) }
		}
		write := func(begin, stop string) func(u user) string {
			return func(u user) string { return want(u.write && covers(u, begin, stop)) }
		}
		rootOnly := func(u user) string { return want(u.root) }
		anyUser := func(user) string { return "ok" }
		ops := []op{
			{"get k", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "k"); return err }, read("k", "")},
			{"get k serializable", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "k", clientv3.WithSerializable()); return err }, read("k", "")},
			{"get r2", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "r2"); return err }, read("r2", "")},
			{"get [r1,r5)", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "r1", clientv3.WithRange("r5")); return err }, read("r1", "r5")},
			{"get [r1,r6)", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "r1", clientv3.WithRange("r6")); return err }, read("r1", "r6")},
			{"get prefix p/", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "p/", clientv3.WithPrefix()); return err }, read("p/", "p0")},
			{"get p/x", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "p/x"); return err }, read("p/x", "")},
			{"get from p/", func(cli *clientv3.Client) error { _, err := cli.Get(ctx, "p/", clientv3.WithFromKey()); return err },
				func(u user) string { return want(u.root) }},
			{"put k", func(cli *clientv3.Client) error { _, err := cli.Put(ctx, "k", "w"); return err }, write("k", "")},
			{"put k prev-kv", func(cli *clientv3.Client) error { _, err := cli.Put(ctx, "k", "w", clientv3.WithPrevKV()); return err },
				func(u user) string { return want(u.read && u.write && covers(u, "k", "")) }},
			{"put r3", func(cli *clientv3.Client) error { _, err := cli.Put(ctx, "r3", "w"); return err }, write("r3", "")},
			{"put p/y", func(cli *clientv3.Client) error { _, err := cli.Put(ctx, "p/y", "w"); return err }, write("p/y", "")},
			{"put z", func(cli *clientv3.Client) error { _, err := cli.Put(ctx, "z", "w"); return err }, write("z", "")},
			{"del [r1,r5)", func(cli *clientv3.Client) error {
				_, err := cli.Delete(ctx, "r1", clientv3.WithRange("r5"))
				return err
			}, write("r1", "r5")},
			{"del prefix p/", func(cli *clientv3.Client) error { _, err := cli.Delete(ctx, "p/", clientv3.WithPrefix()); return err }, write("p/", "p0")},
			{"txn cmp k, put p/z", func(cli *clientv3.Client) error {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k"), ">", 0)).Then(clientv3.OpPut("p/z", "1")).Commit()
				return err
			}, func(u user) string { return want(u.root) }},
			{"txn cmp p/x, get p/x", func(cli *clientv3.Client) error {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("p/x"), ">", 0)).Then(clientv3.OpGet("p/x")).Commit()
				return err
			}, read("p/x", "")},
			{"txn else put r4", func(cli *clientv3.Client) error {
				_, err := cli.Txn(ctx).Else(clientv3.OpPut("r4", "1")).Commit()
				return err
			}, write("r4", "")},
			{"compact", func(cli *clientv3.Client) error { _, err := cli.Compact(ctx, 1); return err }, rootOnly},
			{"status", func(cli *clientv3.Client) error { _, err := cli.Status(ctx, c.endpoints()[0]); return err }, anyUser},
			{"alarm list", func(cli *clientv3.Client) error { _, err := cli.AlarmList(ctx); return err }, anyUser},
			{"defragment", func(cli *clientv3.Client) error { _, err := cli.Defragment(ctx, c.endpoints()[0]); return err }, rootOnly},
			{"hashkv", func(cli *clientv3.Client) error { _, err := cli.HashKV(ctx, c.endpoints()[0], 0); return err }, rootOnly},
			{"member list", func(cli *clientv3.Client) error { _, err := cli.MemberList(ctx); return err }, anyUser},
			{"user list", func(cli *clientv3.Client) error { _, err := cli.UserList(ctx); return err }, rootOnly},
			{"role list", func(cli *clientv3.Client) error { _, err := cli.RoleList(ctx); return err }, rootOnly},
			{"auth status", func(cli *clientv3.Client) error { _, err := cli.AuthStatus(ctx); return err }, anyUser},
			{"watch k", func(cli *clientv3.Client) error {
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				wr := <-cli.Watch(wctx, "k", clientv3.WithCreatedNotify())
				return wr.Err()
			}, read("k", "")},
		}
		for _, u := range users {
			cli := c.userClient(u.name, "pw")
			for _, o := range ops {
				if got, w := errDesc(o.do(cli)), o.want(u); got != w {
					t.Errorf("%s as %s: %q, want %q", o.name, u.name, got, w)
				}
			}
		}
		// Without credentials: every check wants a user.
		anon := c.client()
		if _, err := anon.Get(ctx, "k"); errDesc(err) != errDesc(rpctypes.ErrGRPCUserEmpty) {
			t.Errorf("anonymous get: %v, want user name is empty", err)
		}
		if _, err := anon.Put(ctx, "k", "v"); errDesc(err) != errDesc(rpctypes.ErrGRPCUserEmpty) {
			t.Errorf("anonymous put: %v, want user name is empty", err)
		}
		if b.name == "metastore" { // ours: refusals are counted
			resp, err := http.Get(c.endpoints()[0] + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !regexp.MustCompile(`(?m)^metastore_auth_failures_total [1-9]`).Match(body) {
				t.Errorf("metastore_auth_failures_total not counted: %s", regexp.MustCompile(`(?m)^metastore_auth.*$`).Find(body))
			}
		}
	})
}

// TestAuthManagement: etcd's answers to the Auth service's refusals.
func TestAuthManagement(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1, "--bcrypt-cost", "4")
		cli := c.client()
		ctx := ctxT(t)
		check := func(what string, err error, want error) {
			t.Helper()
			if errDesc(err) != errDesc(want) {
				t.Errorf("%s: %v, want %v", what, err, want)
			}
		}
		_, err := cli.AuthEnable(ctx)
		check("enable without root", err, rpctypes.ErrGRPCRootUserNotExist)
		_, err = cli.UserAdd(ctx, "root", "rootpw")
		check("add root", err, nil)
		_, err = cli.AuthEnable(ctx)
		check("enable without the root role", err, rpctypes.ErrGRPCRootRoleNotExist)
		_, err = cli.UserAdd(ctx, "root", "x")
		check("add root again", err, rpctypes.ErrGRPCUserAlreadyExist)
		_, err = cli.UserGrantRole(ctx, "root", "nope")
		check("grant a missing role", err, rpctypes.ErrGRPCRoleNotFound)
		_, err = cli.UserGrantRole(ctx, "nobody", "root")
		check("grant to a missing user", err, rpctypes.ErrGRPCUserNotFound)
		_, err = cli.RoleAdd(ctx, "")
		check("add an empty role", err, rpctypes.ErrGRPCRoleEmpty)
		_, err = cli.RoleAdd(ctx, "r")
		check("add r", err, nil)
		_, err = cli.RoleAdd(ctx, "r")
		check("add r again", err, rpctypes.ErrGRPCRoleAlreadyExist)
		_, err = cli.RoleGrantPermission(ctx, "r", "b", "a", clientv3.PermissionType(clientv3.PermRead))
		check("grant an inverted range", err, rpctypes.ErrGRPCInvalidAuthMgmt)
		_, err = cli.RoleGrantPermission(ctx, "r", "", "", clientv3.PermissionType(clientv3.PermRead))
		check("grant an empty key", err, rpctypes.ErrGRPCInvalidAuthMgmt)
		_, err = cli.RoleGrantPermission(ctx, "r", "a", "\x00", clientv3.PermissionType(clientv3.PermRead))
		check("grant from a", err, nil)
		_, err = cli.RoleRevokePermission(ctx, "r", "a", "")
		check("revoke what was not granted", err, rpctypes.ErrGRPCPermissionNotGranted)
		_, err = cli.UserRevokeRole(ctx, "root", "r")
		check("revoke a role not granted", err, rpctypes.ErrGRPCRoleNotGranted)
		_, err = cli.UserGrantRole(ctx, "root", "root")
		check("grant root", err, nil)
		_, err = cli.AuthEnable(ctx)
		check("enable", err, nil)
		_, err = cli.UserList(ctx)
		check("list without a user", err, rpctypes.ErrGRPCUserEmpty)
		rc := c.userClient("root", "rootpw")
		_, err = rc.UserDelete(ctx, "root")
		check("delete root", err, rpctypes.ErrGRPCInvalidAuthMgmt)
		_, err = rc.UserRevokeRole(ctx, "root", "root")
		check("revoke root's root", err, rpctypes.ErrGRPCInvalidAuthMgmt)
		_, err = rc.RoleDelete(ctx, "root")
		check("delete the root role", err, rpctypes.ErrGRPCInvalidAuthMgmt)
		_, err = rc.UserAddWithOptions(ctx, "nopw", "", &clientv3.UserAddOptions{NoPassword: true})
		check("add a no-password user", err, nil)
		_, err = cli.Authenticate(ctx, "nopw", "")
		if err == nil {
			t.Errorf("a no-password user logged in with a password")
		}
		_, err = cli.Authenticate(ctx, "root", "wrong")
		check("wrong password", err, rpctypes.ErrGRPCAuthFailed)
		_, err = cli.Authenticate(ctx, "ghost", "x")
		check("unknown user", err, rpctypes.ErrGRPCAuthFailed)
		st, err := rc.AuthStatus(ctx)
		if err != nil || !st.Enabled {
			t.Fatalf("auth status: %v %v", st, err)
		}
		_, err = rc.AuthDisable(ctx)
		check("disable", err, nil)
		_, err = cli.Authenticate(ctx, "root", "rootpw")
		check("authenticate while disabled", err, rpctypes.ErrGRPCAuthNotEnabled)
	})
}

// TestAuthTokenLifecycle: a token stops working once its user is deleted, its
// password changes or its role is revoked; a permission revoked while a token lives
// is refused at once; an expired simple token is refused (--auth-token-ttl).
func TestAuthTokenLifecycle(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c, root := authCluster(t, b, "--auth-token-ttl", "2")
		ctx := ctxT(t)
		must(t, func() error { _, err := root.RoleAdd(ctx, "rw"); return err })
		must(t, func() error {
			_, err := root.RoleGrantPermission(ctx, "rw", "a", "b", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		})
		for _, u := range []string{"alice", "bob", "carol"} {
			must(t, func() error { _, err := root.UserAdd(ctx, u, "pw"); return err })
			must(t, func() error { _, err := root.UserGrantRole(ctx, u, "rw"); return err })
		}
		raw := c.client() // sends the token it is given, never logs in again
		token := func(user string) context.Context {
			resp, err := raw.Authenticate(ctx, user, "pw")
			if err != nil {
				t.Fatalf("authenticate %s: %v", user, err)
			}
			return withToken(ctx, resp.Token)
		}
		alice, bob, carol := token("alice"), token("bob"), token("carol")
		for _, tc := range []context.Context{alice, bob, carol} {
			if _, err := raw.Put(tc, "a1", "v"); err != nil {
				t.Fatalf("put with a fresh token: %v", err)
			}
		}
		must(t, func() error { _, err := root.UserDelete(ctx, "alice"); return err })
		if _, err := raw.Get(alice, "a1"); err == nil {
			t.Errorf("a deleted user's token still reads")
		}
		must(t, func() error { _, err := root.UserRevokeRole(ctx, "bob", "rw"); return err })
		if _, err := raw.Put(bob, "a1", "v"); err == nil {
			t.Errorf("a token still writes after its role was revoked")
		}
		must(t, func() error { _, err := root.RoleRevokePermission(ctx, "rw", "a", "b"); return err })
		if _, err := raw.Get(carol, "a1"); err == nil {
			t.Errorf("a token still reads after the permission was revoked")
		}
		// Expiry: a token left unused for longer than its TTL (2s) is refused.
		must(t, func() error { _, err := root.UserAdd(ctx, "dave", "pw"); return err })
		must(t, func() error { _, err := root.UserGrantRole(ctx, "dave", "root"); return err })
		d := token("dave")
		if _, err := raw.Get(d, "a1"); err != nil {
			t.Fatalf("fresh token: %v", err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			time.Sleep(3 * time.Second) // unused for more than the TTL
			_, err := raw.Get(d, "a1")
			if errors.Is(err, rpctypes.ErrInvalidAuthToken) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token still valid 20s after a TTL of 2s: %v", err)
			}
		}
	})
}

// withToken sends token in the "token" metadata, as clientv3 does once logged in.
func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, token)
}

// TestAuthTokenOnEveryMember: a simple token issued by one member works on every
// member (etcd registers it through Raft), and root-only membership calls answer
// etcd's refusal to another user.
func TestAuthTokenOnEveryMember(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3, "--bcrypt-cost", "4")
		cli := c.client(0)
		ctx := ctxT(t)
		must(t, func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err })
		must(t, func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err })
		must(t, func() error { _, err := cli.UserAdd(ctx, "u", "pw"); return err })
		must(t, func() error { _, err := cli.AuthEnable(ctx); return err })
		resp, err := c.client(1).Authenticate(ctx, "root", "rootpw")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := c.client(i).Put(withToken(ctx, resp.Token), "k", "v"); err != nil {
				t.Errorf("member %d refused the token of member 1: %v", i, err)
			}
		}
		u := c.userClient("u", "pw")
		if _, err := u.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); errDesc(err) != errDesc(rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("member add as u: %v, want permission denied", err)
		}
		if _, err := u.MemberList(ctx); err != nil {
			t.Errorf("member list as u: %v", err)
		}
	})
}

// TestAuthClientCertCN: with --client-cert-auth, a request without a token is made by
// the user its client certificate names in its CN, as etcd.
func TestAuthClientCertCN(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newClusterURLs(t, b, 1, "https://127.0.0.1:%d", "http://127.0.0.1:%d",
			append(manualTLSArgs(), "--client-cert-auth", "--bcrypt-cost", "4")...)
		cli := tlsClient(t, clientTLS(t, tlsCert, tlsKey), c.endpoints()...)
		ctx := ctxT(t)
		must(t, func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err })
		must(t, func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err })
		must(t, func() error { _, err := cli.UserAdd(ctx, "example.com", "pw"); return err }) // the certificate's CN
		must(t, func() error { _, err := cli.RoleAdd(ctx, "ab"); return err })
		must(t, func() error {
			_, err := cli.RoleGrantPermission(ctx, "ab", "a", "b", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		})
		must(t, func() error { _, err := cli.UserGrantRole(ctx, "example.com", "ab"); return err })
		must(t, func() error { _, err := cli.AuthEnable(ctx); return err })
		if _, err := cli.Put(ctx, "a1", "v"); err != nil {
			t.Errorf("put inside the CN user's range: %v", err)
		}
		if _, err := cli.Put(ctx, "z", "v"); errDesc(err) != errDesc(rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("put outside the CN user's range: %v, want permission denied", err)
		}
		if _, err := cli.UserList(ctx); errDesc(err) != errDesc(rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("user list as the CN user: %v, want permission denied", err)
		}
	})
}

// TestAuthLeaseRenewAndRevoke: keep-alives and revokes of a lease want write on every
// key attached to it (etcd's checkLeaseRenew and the revoke's check at apply).
func TestAuthLeaseRenewAndRevoke(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c, root := authCluster(t, b)
		ctx := ctxT(t)
		for name, typ := range map[string]clientv3.PermissionType{
			"writer": clientv3.PermissionType(clientv3.PermWrite), "reader": clientv3.PermissionType(clientv3.PermRead)} {
			must(t, func() error { _, err := root.UserAdd(ctx, name, "pw"); return err })
			must(t, func() error { _, err := root.RoleAdd(ctx, name); return err })
			must(t, func() error { _, err := root.RoleGrantPermission(ctx, name, "a", "b", typ); return err })
			must(t, func() error { _, err := root.UserGrantRole(ctx, name, name); return err })
		}
		l, err := root.Grant(ctx, 600)
		if err != nil {
			t.Fatal(err)
		}
		must(t, func() error { _, err := root.Put(ctx, "a1", "v", clientv3.WithLease(l.ID)); return err })
		reader, writer := c.userClient("reader", "pw"), c.userClient("writer", "pw")
		if _, err := reader.KeepAliveOnce(ctx, l.ID); errDesc(err) != errDesc(rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("keep-alive as reader: %v, want permission denied", err)
		}
		if _, err := writer.KeepAliveOnce(ctx, l.ID); err != nil {
			t.Errorf("keep-alive as writer: %v", err)
		}
		if _, err := reader.Revoke(ctx, l.ID); errDesc(err) != errDesc(rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("revoke as reader: %v, want permission denied", err)
		}
		if _, err := writer.Revoke(ctx, l.ID); err != nil {
			t.Errorf("revoke as writer: %v", err)
		}
	})
}
