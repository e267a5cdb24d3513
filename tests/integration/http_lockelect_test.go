package integration

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/metastore/metastore/internal/etcdbin"
)

// lockElectionRequests are etcd's v3lock and v3election gateway paths, shaped like its
// documented curl examples (name and keys in base64), on an empty member: the lock is
// mylock/4d2 (name/lease in hex) at revision 2, freed at 3; the campaign elect/4d2 at 4.
var lockElectionRequests = []struct{ method, path, body string }{
	{"POST", "/v3/lease/grant", `{"TTL": 30, "ID": 1234}`},
	{"POST", "/v3/lock/lock", `{"name": "bXlsb2Nr", "lease": 1234}`},
	{"POST", "/v3/kv/range", `{"key": "bXlsb2Nr", "range_end": "bXlsb2Ns"}`},
	{"POST", "/v3/lock/unlock", `{"key": "bXlsb2NrLzRkMg=="}`},
	{"POST", "/v3/lock/unlock", `{"key": "bXlsb2NrLzRkMg=="}`},
	{"POST", "/v3/lock/lock", `not json`},
	{"POST", "/v3/lock/lock", `{"name": "bXlsb2Nr", "lease": 999}`},
	{"POST", "/v3/election/campaign", `{"name": "ZWxlY3Q=", "lease": 1234, "value": "djE="}`},
	{"POST", "/v3/election/leader", `{"name": "ZWxlY3Q="}`},
	{"POST", "/v3/election/proclaim", `{"leader": {"name": "ZWxlY3Q=", "key": "ZWxlY3QvNGQy", "rev": 4, "lease": 1234}, "value": "djI="}`},
	{"POST", "/v3/election/leader", `{"name": "ZWxlY3Q="}`},
	{"POST", "/v3/election/proclaim", `{"leader": {"name": "ZWxlY3Q=", "key": "ZWxlY3QvNGQy", "rev": 3, "lease": 1234}, "value": "djM="}`},
	{"POST", "/v3/election/proclaim", `{"value": "djM="}`},
	{"POST", "/v3/election/resign", `{}`},
	{"POST", "/v3/election/leader", `{"name": "bm9uZQ=="}`},
	{"POST", "/v3/election/resign", `{"leader": {"name": "ZWxlY3Q=", "key": "ZWxlY3QvNGQy", "rev": 4, "lease": 1234}}`},
	{"POST", "/v3/election/leader", `{"name": "ZWxlY3Q="}`},
	{"POST", "/v3/election/resign", `{"leader": {"name": "ZWxlY3Q=", "key": "ZWxlY3QvNGQy", "rev": 4, "lease": 1234}}`},
	{"GET", "/v3/lock/lock", ``},
}

// doRequests sends reqs in order to base, with header (if any) on each, and returns
// the normalized answers.
func doRequests(t *testing.T, base string, reqs []struct{ method, path, body string }, header http.Header) []httpAnswer {
	t.Helper()
	var out []httpAnswer
	for _, r := range reqs {
		req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		out = append(out, readAnswer(t, resp))
	}
	return out
}

// compareWithEtcd runs reqs on a fresh real etcd set up by setup, and reports every
// answer that differs from got.
func compareWithEtcd(t *testing.T, got []httpAnswer, reqs []struct{ method, path, body string },
	setup func(t *testing.T, b binary) (base string, header http.Header)) {
	t.Helper()
	p := etcdbin.Path("etcd")
	if p == "" {
		t.Skip("no etcd binary to compare with (ETCD_BIN, or scripts/build-etcd.sh)")
	}
	base, header := setup(t, binary{"etcd", p})
	want := doRequests(t, base, reqs, header)
	for i := range reqs {
		if !reflect.DeepEqual(got[i], want[i]) {
			r := reqs[i]
			t.Errorf("%s %s %s:\n metastore %v\n etcd      %v", r.method, r.path, r.body, got[i], want[i])
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The gateway serves etcd's v3lock and v3election paths as etcd does: lock and unlock,
// campaign, leader, proclaim and resign answer with etcd's JSON (the lock key, the
// leader key, the leader's kv) and etcd's error bodies (not leader, no leader, a
// missing leader, a lease not found, a malformed body).
func TestGatewayLockElectionAsEtcd(t *testing.T) {
	setup := func(t *testing.T, b binary) (string, http.Header) {
		return newCluster(t, b, 1).members[0].clientURL, nil
	}
	base, _ := setup(t, ours())
	got := doRequests(t, base, lockElectionRequests, nil)
	body := func(i int) map[string]any {
		t.Helper()
		m, ok := got[i].Body.(map[string]any)
		if got[i].Status != http.StatusOK || !ok {
			t.Fatalf("%s %s = %v", lockElectionRequests[i].path, lockElectionRequests[i].body, got[i])
		}
		return m
	}
	if key := body(1)["key"]; key != b64("mylock/4d2") {
		t.Errorf("lock key = %v, want mylock/4d2", key)
	}
	if kvs := body(2)["kvs"].([]any); len(kvs) != 1 || kvs[0].(map[string]any)["lease"] != "1234" {
		t.Errorf("range of the lock = %v, want its key on lease 1234", kvs)
	}
	if l := body(7)["leader"]; !reflect.DeepEqual(l, map[string]any{"name": b64("elect"), "key": b64("elect/4d2"), "rev": "4", "lease": "1234"}) {
		t.Errorf("campaign leader = %v", l)
	}
	if v := body(10)["kv"].(map[string]any)["value"]; v != b64("v2") {
		t.Errorf("leader after proclaim = %v, want v2", v)
	}
	for _, i := range []int{5, 6, 11, 12, 14, 16} {
		if got[i].Status < 400 {
			t.Errorf("%s %s = %v, want an error", lockElectionRequests[i].path, lockElectionRequests[i].body, got[i])
		}
	}
	compareWithEtcd(t, got, lockElectionRequests, setup)
}

// /v3/election/observe streams the leader's kv as newline-separated JSON over one POST,
// as etcd's gateway: the current leader first, then each proclaimed value.
func TestGatewayElectionObserveStreams(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		base := newCluster(t, b, 1).members[0].clientURL
		post := func(path, body string) map[string]any {
			t.Helper()
			a := doRequests(t, base, []struct{ method, path, body string }{{"POST", path, body}}, nil)[0]
			m, ok := a.Body.(map[string]any)
			if a.Status != http.StatusOK || !ok {
				t.Fatalf("%s %s = %v", path, body, a)
			}
			return m
		}
		post("/v3/lease/grant", `{"TTL": 30, "ID": 1234}`)
		leader := post("/v3/election/campaign", `{"name": "ZWxlY3Q=", "lease": 1234, "value": "djE="}`)["leader"]

		resp, err := http.Post(base+"/v3/election/observe", "application/json", strings.NewReader(`{"name": "ZWxlY3Q="}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		lines := bufio.NewScanner(resp.Body)
		next := func() map[string]any {
			t.Helper()
			if !lines.Scan() {
				t.Fatalf("observe stream ended: %v", lines.Err())
			}
			var v map[string]any
			if err := json.Unmarshal(lines.Bytes(), &v); err != nil {
				t.Fatalf("observe line %q: %v", lines.Text(), err)
			}
			r, ok := v["result"].(map[string]any)
			if !ok {
				t.Fatalf("observe line = %v, want a result", v)
			}
			return r["kv"].(map[string]any)
		}
		if kv := next(); kv["key"] != b64("elect/4d2") || kv["value"] != b64("v1") {
			t.Fatalf("first observed = %v, want elect/4d2 = v1", kv)
		}
		body, _ := json.Marshal(map[string]any{"leader": leader, "value": b64("v2")})
		post("/v3/election/proclaim", string(body))
		if kv := next(); kv["key"] != b64("elect/4d2") || kv["value"] != b64("v2") || kv["version"] != "2" {
			t.Errorf("observed after proclaim = %v, want elect/4d2 = v2, version 2", kv)
		}
	})
}

// With auth enabled, the Authorization header carries the token to v3lock and
// v3election as to every gateway path: root locks, unlocks and campaigns with it;
// without it, or as a user who may only read the prefix, the answer is etcd's error.
func TestGatewayLockElectionAuth(t *testing.T) {
	reqs := []struct{ method, path, body string }{
		{"POST", "/v3/lease/grant", `{"TTL": 30, "ID": 1234}`},
		{"POST", "/v3/lock/lock", `{"name": "TC9h", "lease": 1234}`},
		{"POST", "/v3/lock/unlock", `{"key": "` + b64("L/a/4d2") + `"}`},
		{"POST", "/v3/election/campaign", `{"name": "TC9l", "lease": 1234, "value": "djE="}`},
		{"POST", "/v3/election/leader", `{"name": "TC9l"}`},
	}
	var (
		noToken  = []int{1, 3, 4}
		asReader = []int{1, 3}
	)
	run := func(t *testing.T, b binary) (string, http.Header, []httpAnswer) {
		c, root := authCluster(t, b)
		ctx := ctxT(t)
		must(t, func() error { _, err := root.UserAdd(ctx, "reader", "pw"); return err })
		must(t, func() error { _, err := root.RoleAdd(ctx, "reader"); return err })
		must(t, func() error {
			_, err := root.RoleGrantPermission(ctx, "reader", "L/", "L0", 0 /* read */)
			return err
		})
		must(t, func() error { _, err := root.UserGrantRole(ctx, "reader", "reader"); return err })
		base := c.members[0].clientURL
		token := func(user, pw string) http.Header {
			t.Helper()
			a := doRequests(t, base, []struct{ method, path, body string }{
				{"POST", "/v3/auth/authenticate", `{"name": "` + user + `", "password": "` + pw + `"}`}}, nil)[0]
			m, _ := a.Body.(map[string]any)
			tok, _ := m["token"].(string)
			if a.Status != http.StatusOK || tok == "" {
				t.Fatalf("authenticate %s = %v", user, a)
			}
			return http.Header{"Authorization": {tok}}
		}
		rootH := token("root", "rootpw")
		out := doRequests(t, base, reqs, rootH)
		for _, i := range noToken {
			out = append(out, doRequests(t, base, reqs[i:i+1], nil)...)
		}
		rh := token("reader", "pw")
		for _, i := range asReader {
			out = append(out, doRequests(t, base, reqs[i:i+1], rh)...)
		}
		return base, rootH, out
	}
	_, _, got := run(t, ours())
	for i := range reqs {
		if got[i].Status != http.StatusOK {
			t.Errorf("%s %s with root's token = %v", reqs[i].path, reqs[i].body, got[i])
		}
	}
	if m, _ := got[1].Body.(map[string]any); m["key"] != b64("L/a/4d2") {
		t.Errorf("lock with root's token = %v", got[1])
	}
	for _, a := range got[len(reqs):] {
		if a.Status < 400 {
			t.Errorf("without a token or as reader: %v, want an error", a)
		}
	}
	p := etcdbin.Path("etcd")
	if p == "" {
		t.Skip("no etcd binary to compare with (ETCD_BIN, or scripts/build-etcd.sh)")
	}
	_, _, want := run(t, binary{"etcd", p})
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("answer %d:\n metastore %v\n etcd      %v", i, got[i], want[i])
			}
		}
	}
}
