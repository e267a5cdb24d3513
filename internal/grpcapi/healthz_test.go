package grpcapi

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/server"
)

func probe(t *testing.T, h http.Handler, method, target string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

// The answers below are etcd v3.7.3's, as curl shows them on a healthy member, on one
// whose reads fail, with a CORRUPT alarm, and on a learner.
func TestLivezReadyzAnswerAsEtcd(t *testing.T) {
	b := newFakeBackend()
	reg := prometheus.NewRegistry()
	h := AccessController(NewHTTPMux(b, reg, zap.NewNop()))

	for _, c := range []struct {
		target string
		code   int
		body   string
	}{
		{"/livez", 200, "ok\n"},
		{"/livez?verbose", 200, "[+]serializable_read ok\nok\n"},
		{"/readyz", 200, "ok\n"},
		{"/readyz?verbose", 200, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"},
		{"/readyz?verbose&exclude=linearizable_read&exclude=nothere", 200, "[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n"},
		{"/readyz/non_learner?verbose", 200, "[+]non_learner ok\nok\n"},
		{"/livez/serializable_read", 200, "ok\n"},
		{"/readyz/", 404, "404 page not found\n"},
		{"/livez/nothere", 404, "404 page not found\n"},
	} {
		code, body, hdr := probe(t, h, http.MethodGet, c.target)
		if code != c.code || body != c.body {
			t.Errorf("GET %s = %d %q, want %d %q", c.target, code, body, c.code, c.body)
		}
		if code == 200 && (hdr.Get("Content-Type") != "text/plain; charset=utf-8" || hdr.Get("X-Content-Type-Options") != "nosniff") {
			t.Errorf("GET %s headers = %v", c.target, hdr)
		}
		if hdr.Get("Access-Control-Allow-Origin") != "*" || hdr.Get("Access-Control-Allow-Headers") != "accept, content-type, authorization" {
			t.Errorf("GET %s: no CORS headers: %v", c.target, hdr)
		}
	}
	if code, body, hdr := probe(t, h, http.MethodPost, "/readyz"); code != 405 || body != "Method Not Allowed\n" || hdr.Get("Allow") != "GET" {
		t.Errorf("POST /readyz = %d %q %v", code, body, hdr)
	}
	if code, body, _ := probe(t, h, http.MethodOptions, "/readyz"); code != 200 || body != "" {
		t.Errorf("OPTIONS /readyz = %d %q, want 200 and no body (etcd's CORS preflight)", code, body)
	}

	// Reads failing: both read checks fail with the server's error, the others pass.
	b.set(func(b *fakeBackend) { b.err = server.ErrTimeout })
	code, body, _ := probe(t, h, http.MethodGet, "/readyz")
	want := "[+]data_corruption ok\n[-]serializable_read failed: etcdserver: request timed out\n" +
		"[-]linearizable_read failed: etcdserver: request timed out\n[+]non_learner ok\n"
	if code != 503 || body != want+"\n" { // http.Error adds a newline
		t.Errorf("GET /readyz with failing reads = %d %q, want 503 %q", code, body, want)
	}
	if code, _, _ := probe(t, h, http.MethodGet, "/readyz?exclude=serializable_read&exclude=linearizable_read"); code != 200 {
		t.Errorf("GET /readyz excluding the reads = %d, want 200", code)
	}
	b.set(func(b *fakeBackend) {
		b.err = nil
		b.alarms = []*pb.AlarmMember{{MemberID: testMemberID, Alarm: pb.AlarmType_CORRUPT}}
	})
	if code, body, _ := probe(t, h, http.MethodGet, "/readyz/data_corruption"); code != 503 || body != "[-]data_corruption failed: alarm activated: CORRUPT\n\n" {
		t.Errorf("GET /readyz/data_corruption with CORRUPT = %d %q", code, body)
	}
	if code, _, _ := probe(t, h, http.MethodGet, "/livez"); code != 200 {
		t.Errorf("GET /livez with CORRUPT = %d, want 200 (liveness ignores alarms)", code)
	}

	// etcd's etcd_server_healthcheck gauge and etcd_server_healthchecks_total.
	if v := gaugeValue(t, reg, "etcd_server_healthcheck", "readyz", "data_corruption"); v != 0 {
		t.Errorf("etcd_server_healthcheck{readyz,data_corruption} = %v, want 0", v)
	}
	if v := gaugeValue(t, reg, "etcd_server_healthcheck", "livez", "serializable_read"); v != 1 {
		t.Errorf("etcd_server_healthcheck{livez,serializable_read} = %v, want 1", v)
	}
	if v := metricValue(t, reg, "etcd_server_healthchecks_total", map[string]string{"type": "livez", "name": "serializable_read", "status": "success"}); v < 3 {
		t.Errorf("etcd_server_healthchecks_total{livez,serializable_read,success} = %v, want >= 3", v)
	}

	lh := NewHTTPMux(learnerBackend{newFakeBackend()}, nil, zap.NewNop())
	if code, body, _ := probe(t, lh, http.MethodGet, "/readyz/non_learner"); code != 503 || body != "[-]non_learner failed: not supported for learner\n\n" {
		t.Errorf("GET /readyz/non_learner on a learner = %d %q", code, body)
	}
}

func TestHealthIsCounted(t *testing.T) {
	b := newFakeBackend()
	reg := prometheus.NewRegistry()
	h := NewHTTPMux(b, reg, zap.NewNop())
	probe(t, h, http.MethodGet, "/health")
	b.set(func(b *fakeBackend) { b.err = errors.New("boom") })
	code, body, _ := probe(t, h, http.MethodGet, "/health?serializable=true")
	if code != 503 || !strings.HasPrefix(body, `{"health":"false","reason":"RANGE ERROR:`) {
		t.Errorf("GET /health with failing reads = %d %q", code, body)
	}
	if v := metricValue(t, reg, "etcd_server_health_success", nil); v != 1 {
		t.Errorf("etcd_server_health_success = %v, want 1", v)
	}
	if v := metricValue(t, reg, "etcd_server_health_failures", nil); v != 1 {
		t.Errorf("etcd_server_health_failures = %v, want 1", v)
	}
}

// gaugeValue is the value of the gauge name{type=kind,name=check} in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, kind, check string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["type"] == kind && labels["name"] == check {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no gauge %s{type=%q,name=%q}", name, kind, check)
	return 0
}
