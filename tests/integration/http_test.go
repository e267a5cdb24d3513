package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/metastore/metastore/internal/etcdbin"
)

// httpAnswer is one HTTP answer with what legitimately differs between servers removed.
type httpAnswer struct {
	Status int
	Body   any // JSON, normalized; or the text of a non-JSON body
}

// volatileJSONKeys differ between two servers answering the same requests: IDs,
// terms, sizes, URLs. (Revisions are compared: both start from an empty store.)
var volatileJSONKeys = map[string]bool{
	"cluster_id": true, "member_id": true, "raft_term": true, "leader": true, "raftTerm": true,
	"dbSize": true, "dbSizeInUse": true, "peerURLs": true, "clientURLs": true, "raftIndex": true,
	"raftAppliedIndex": true, "TTL": true,
}

func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k := range x {
			if _, isObject := x[k].(map[string]any); volatileJSONKeys[k] && !isObject {
				x[k] = "*" // an election's "leader" is an object, compared
			} else {
				x[k] = normalizeJSON(x[k])
			}
		}
		// Member IDs differ; lease IDs are given by the requests below and compared.
		if _, isMember := x["peerURLs"]; isMember {
			x["ID"] = "*"
		}
	case []any:
		for i := range x {
			x[i] = normalizeJSON(x[i])
		}
	}
	return v
}

func readAnswer(t *testing.T, resp *http.Response) httpAnswer {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		// etcd prints /livez and /readyz checks in a map's order: compare them sorted.
		lines := strings.Split(string(b), "\n")
		sort.Strings(lines)
		return httpAnswer{resp.StatusCode, strings.Join(lines, "\n")}
	}
	return httpAnswer{resp.StatusCode, normalizeJSON(v)}
}

// gatewayRequests are etcd's documented grpc-gateway curl examples
// (dev-guide/api_grpc_gateway) and a few more, in order, on an empty member.
var gatewayRequests = []struct{ method, path, body string }{
	{"POST", "/v3/kv/put", `{"key": "Zm9v", "value": "YmFy"}`},
	{"POST", "/v3/kv/range", `{"key": "Zm9v"}`},
	{"POST", "/v3/kv/range", `{"key": "Zm9v", "range_end": "Zm9w"}`},
	{"POST", "/v3/kv/txn", `{"compare":[{"target":"CREATE","key":"Zm9v","createRevision":"2"}],"success":[{"requestPut":{"key":"Zm9v","value":"YmFy"}}]}`},
	{"POST", "/v3/kv/put", `{"key": "Zm9v", "value": "YmF6", "prev_kv": true}`},
	{"POST", "/v3/kv/range", `{"key": ""}`},
	{"POST", "/v3/kv/range", `{"key": "Zm9v", "revision": 100}`},
	{"POST", "/v3/kv/range", `not json`},
	{"POST", "/v3/kv/range", `{"key": "Zm9v", "unknown_field": 1}`},
	{"POST", "/v3/kv/compaction", `{"revision": 2}`},
	{"POST", "/v3/kv/range", `{"key": "Zm9v", "revision": 1}`},
	{"POST", "/v3/kv/deleterange", `{"key": "Zm9v", "prev_kv": true}`},
	{"POST", "/v3/lease/grant", `{"TTL": 30, "ID": 1234}`},
	{"POST", "/v3/kv/put", `{"key": "bGVhc2Vk", "value": "eA==", "lease": 1234}`},
	{"POST", "/v3/lease/timetolive", `{"ID": 1234, "keys": true}`},
	{"POST", "/v3/lease/leases", `{}`},
	{"POST", "/v3/lease/revoke", `{"ID": 1234}`},
	{"POST", "/v3/lease/revoke", `{"ID": 1234}`},
	{"POST", "/v3/kv/range", `{"key": "bGVhc2Vk"}`},
	{"POST", "/v3/maintenance/status", `{}`},
	{"POST", "/v3/maintenance/alarm", `{"action": "GET"}`},
	{"POST", "/v3/cluster/member/list", `{}`},
	{"POST", "/v3beta/kv/range", `{"key": "Zm9v"}`},
	{"POST", "/v3/nothere", `{}`},
	{"GET", "/v3/kv/range", ``},
	{"GET", "/health", ``},
	{"GET", "/health?serializable=true", ``},
	{"GET", "/health?exclude=NOSPACE", ``},
	{"GET", "/livez?verbose", ``},
	{"GET", "/readyz?verbose", ``},
	{"GET", "/readyz/linearizable_read?verbose", ``},
	{"GET", "/readyz/nothere", ``},
	{"POST", "/livez", ``},
	{"GET", "/version", ``},
}

func runGatewayRequests(t *testing.T, base string) []httpAnswer {
	t.Helper()
	var out []httpAnswer
	for _, r := range gatewayRequests {
		req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		a := readAnswer(t, resp)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: no CORS header", r.method, r.path)
		}
		out = append(out, a)
	}
	return out
}

// The JSON gateway and the health endpoints answer etcd's curl examples as etcd does:
// same status, same JSON (field names, base64 bytes, 64-bit numbers as strings, error
// bodies) apart from IDs, terms and sizes.
func TestGatewayAnswersAsEtcd(t *testing.T) {
	ms := newCluster(t, ours(), 1)
	got := runGatewayRequests(t, ms.members[0].clientURL)
	for i, a := range got {
		r := gatewayRequests[i]
		if a.Status == 0 || (a.Status >= 500 && r.method == "POST") {
			t.Errorf("%s %s %s = %v", r.method, r.path, r.body, a)
		}
	}
	if want := (httpAnswer{200, map[string]any{"etcdserver": "3.7.3", "etcdcluster": "3.7.0", "storage": "3.7.0"}}); !reflect.DeepEqual(got[len(got)-1], want) {
		t.Errorf("/version = %v", got[len(got)-1])
	}
	p := etcdbin.Path("etcd")
	if p == "" {
		t.Skip("no etcd binary to compare with (ETCD_BIN, or scripts/build-etcd.sh)")
	}
	want := runGatewayRequests(t, newCluster(t, binary{"etcd", p}, 1).members[0].clientURL)
	for i := range gatewayRequests {
		if !reflect.DeepEqual(got[i], want[i]) {
			r := gatewayRequests[i]
			t.Errorf("%s %s %s:\n metastore %v\n etcd      %v", r.method, r.path, r.body, got[i], want[i])
		}
	}
}

// /v3/watch streams newline-separated JSON responses over one POST, as etcd's gateway.
func TestGatewayWatchStreams(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		base := newCluster(t, b, 1).members[0].clientURL
		resp, err := http.Post(base+"/v3/watch", "application/json", strings.NewReader(`{"create_request": {"key":"Zm9v"}}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		lines := bufio.NewScanner(resp.Body)
		next := func() map[string]any {
			t.Helper()
			if !lines.Scan() {
				t.Fatalf("watch stream ended: %v", lines.Err())
			}
			var v map[string]any
			if err := json.Unmarshal(lines.Bytes(), &v); err != nil {
				t.Fatalf("watch line %q: %v", lines.Text(), err)
			}
			return v["result"].(map[string]any)
		}
		if created := next(); created["created"] != true {
			t.Fatalf("first watch response = %v, want created", created)
		}
		go func() {
			r, err := http.Post(base+"/v3/kv/put", "application/json", strings.NewReader(`{"key": "Zm9v", "value": "YmFy"}`))
			if err == nil {
				r.Body.Close()
			}
		}()
		ev := next()
		evs, _ := ev["events"].([]any)
		if len(evs) != 1 {
			t.Fatalf("watch response = %v, want one event", ev)
		}
		kv := evs[0].(map[string]any)["kv"].(map[string]any)
		if got := fmt.Sprint(kv["key"], " ", kv["value"], " ", kv["mod_revision"]); got != "Zm9v YmFy 2" {
			t.Errorf("event kv = %v", kv)
		}
	})
}

// --enable-grpc-gateway=false leaves /v3/ unserved (404), /health still served.
func TestGatewayCanBeDisabled(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		base := newCluster(t, b, 1, "--enable-grpc-gateway=false").members[0].clientURL
		resp, err := http.Post(base+"/v3/kv/range", "application/json", strings.NewReader(`{"key": "Zm9v"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/v3/kv/range without the gateway = %d, want 404", resp.StatusCode)
		}
		resp, err = http.Get(base + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/health = %d", resp.StatusCode)
		}
	})
}
