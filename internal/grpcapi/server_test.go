package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/clientport"
	"github.com/metastore/metastore/internal/server"
)

type testServer struct {
	b    *fakeBackend
	cli  *clientv3.Client
	addr string
	reg  *prometheus.Registry
}

// startServer serves a fake backend on 127.0.0.1:0 exactly as the member will (gRPC
// and HTTP on one port) and connects the real etcd client to it.
func startServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	b := newFakeBackend()
	reg := prometheus.NewRegistry()
	opts.Registry = reg
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewServer(b, opts)
	served := make(chan error, 1)
	go func() { served <- clientport.Serve(l, true, nil, g, NewHTTPMux(b, reg, zap.NewNop())) }()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.Close()
		g.GracefulStop()
		if err := <-served; err != nil {
			t.Errorf("Serve after GracefulStop: %v", err)
		}
	})
	return &testServer{b: b, cli: cli, addr: l.Addr().String(), reg: reg}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func checkHeader(t *testing.T, what string, h *pb.ResponseHeader, wantRev int64) {
	t.Helper()
	if h.GetClusterId() != testClusterID || h.GetMemberId() != testMemberID || h.GetRaftTerm() != testTerm || h.GetRevision() != wantRev {
		t.Errorf("%s header = %v, want cluster %x member %x term %d revision %d", what, h, testClusterID, testMemberID, testTerm, wantRev)
	}
}

func TestKVRoundTripFillsHeaders(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t)

	pr, err := s.cli.Put(ctx, "foo", "bar")
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, "put", pr.Header, 2)
	gr, err := s.cli.Get(ctx, "foo")
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, "get", gr.Header, 2)
	if len(gr.Kvs) != 1 || string(gr.Kvs[0].Value) != "bar" {
		t.Fatalf("get foo = %v", gr.Kvs)
	}
	tr, err := s.cli.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("b", "2")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, "txn", tr.Header, 4)
	dr, err := s.cli.Delete(ctx, "foo")
	if err != nil || dr.Deleted != 1 {
		t.Fatalf("delete: %v %v", dr, err)
	}
	checkHeader(t, "delete", dr.Header, 5)
	ch, err := s.cli.GetStream(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	sr, err := clientv3.GetStreamToGetResponse(ch)
	if err != nil || len(sr.Kvs) != 1 || string(sr.Kvs[0].Value) != "1" {
		t.Fatalf("get --stream a = %v, %v", sr, err)
	}
	checkHeader(t, "range stream", sr.Header, 5)
	ch, err = s.cli.GetStream(ctx, "a", clientv3.WithMinModRev(2))
	if err == nil {
		_, err = clientv3.GetStreamToGetResponse(ch)
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("range stream with a revision filter: %v", err)
	}
	// The backend leaves the compaction header empty: the revision is the current one.
	cr, err := s.cli.Compact(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, "compact", cr.Header, 5)
}

func TestInvalidRequestsAreRejectedBeforeTheBackend(t *testing.T) {
	s := startServer(t, Options{MaxTxnOps: 3})
	ctx := testCtx(t)
	raw := pb.NewKVClient(s.cli.ActiveConnection())

	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"put of an empty key", func() error { _, err := s.cli.Put(ctx, "", "v"); return err }, rpctypes.ErrEmptyKey},
		{"get of an empty key", func() error { _, err := s.cli.Get(ctx, ""); return err }, rpctypes.ErrEmptyKey},
		{"delete of an empty key", func() error { _, err := s.cli.Delete(ctx, ""); return err }, rpctypes.ErrEmptyKey},
		{"ignore_value with a value", func() error { _, err := s.cli.Put(ctx, "k", "v", clientv3.WithIgnoreValue()); return err }, rpctypes.ErrValueProvided},
		{"ignore_lease with a lease", func() error {
			_, err := s.cli.Put(ctx, "k", "v", clientv3.WithIgnoreLease(), clientv3.WithLease(5))
			return err
		}, rpctypes.ErrLeaseProvided},
		{"txn over --max-txn-ops", func() error {
			_, err := s.cli.Txn(ctx).Then(clientv3.OpGet("a"), clientv3.OpGet("b"), clientv3.OpGet("c"), clientv3.OpGet("d")).Commit()
			return err
		}, rpctypes.ErrTooManyOps},
		{"txn putting a key twice", func() error {
			_, err := s.cli.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("a", "2")).Commit()
			return err
		}, rpctypes.ErrDuplicateKey},
		{"txn putting into a deleted range", func() error {
			_, err := s.cli.Txn(ctx).Else(clientv3.OpDelete("a", clientv3.WithPrefix()), clientv3.OpPut("ab", "2")).Commit()
			return err
		}, rpctypes.ErrDuplicateKey},
		{"nested txn putting the outer key", func() error {
			_, err := s.cli.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("a", "2")}, nil)).Commit()
			return err
		}, rpctypes.ErrDuplicateKey},
		{"sort order out of range", func() error {
			_, err := raw.Range(ctx, &pb.RangeRequest{Key: []byte("a"), SortOrder: 9})
			return rpctypes.Error(err)
		}, rpctypes.ErrInvalidSortOption},
		{"empty txn op", func() error {
			_, err := raw.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return rpctypes.Error(err)
		}, rpctypes.ErrKeyNotFound},
	} {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: client got %v, want %v", tc.name, err, tc.want)
		}
	}
	if n := s.b.callCount(); n != 0 {
		t.Errorf("%d invalid requests reached the backend", n)
	}
}

func TestBackendErrorsAsTheClientSeesThem(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t)

	// Mutations are not retried by the client, so every status comes straight back.
	for _, tc := range []struct {
		err  error
		want error
	}{
		{server.ErrNoSpace, rpctypes.ErrNoSpace},
		{fmt.Errorf("propose: %w", server.ErrNoLeader), rpctypes.ErrNoLeader},
		{server.ErrTimeout, rpctypes.ErrTimeout},
		{server.ErrRequestTooLarge, rpctypes.ErrRequestTooLarge},
		{server.ErrTooManyRequests, rpctypes.ErrTooManyRequests},
		{server.ErrLeaseNotFound, rpctypes.ErrLeaseNotFound},
	} {
		s.b.set(func(b *fakeBackend) { b.err = tc.err })
		if _, err := s.cli.Put(ctx, "k", "v"); !errors.Is(err, tc.want) {
			t.Errorf("backend %v: client got %v, want %v", tc.err, err, tc.want)
		}
	}
	s.b.set(func(b *fakeBackend) { b.err = fmt.Errorf("range at 3: %w", server.ErrCompacted) })
	if _, err := s.cli.Get(ctx, "k", clientv3.WithRev(3)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("compacted read: client got %v", err)
	}
	s.b.set(func(b *fakeBackend) { b.err = errors.New("disk on fire") })
	if _, err := s.cli.Put(ctx, "k", "v"); status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("unknown backend error: client got %v", err)
	}

	s.b.set(func(b *fakeBackend) { b.err = nil })
	if _, err := s.cli.Compact(ctx, 100); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Errorf("compact to a future revision: client got %v", err)
	}
	if _, err := s.cli.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Compact(ctx, 1); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("compact twice: client got %v", err)
	}
}

// metricValue returns the value of the counter name whose labels include want.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, want)
	return 0
}

func TestPanicInHandlerIsRecovered(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := startServer(t, Options{Logger: zap.New(core)})
	ctx := testCtx(t)

	_, err := s.cli.Put(ctx, "panic", "v")
	if status.Code(err) != codes.Internal {
		t.Fatalf("put that panics: got %v, want codes.Internal", err)
	}
	if _, err := s.cli.Put(ctx, "after", "v"); err != nil {
		t.Fatalf("server must keep serving after a panic: %v", err)
	}
	panics := logs.FilterMessage("panic in gRPC handler, recovered").All()
	if len(panics) != 1 || !strings.Contains(fmt.Sprint(panics[0].ContextMap()["stack"]), "fakeBackend).putLocked") {
		t.Errorf("the panic must be logged once with its stack, got %v", panics)
	}
	if logs.FilterLevelExact(zapcore.DebugLevel).Len() == 0 {
		t.Error("a debug logger must get the gRPC call logs")
	}
	if v := metricValue(t, s.reg, "grpc_req_panics_recovered_total", nil); v != 1 {
		t.Errorf("grpc_req_panics_recovered_total = %v, want 1", v)
	}
	put := map[string]string{"grpc_service": "etcdserverpb.KV", "grpc_method": "Put"}
	put["grpc_code"] = "Internal"
	if v := metricValue(t, s.reg, "grpc_server_handled_total", put); v != 1 {
		t.Errorf("handled Put Internal = %v, want 1", v)
	}
	put["grpc_code"] = "OK"
	if v := metricValue(t, s.reg, "grpc_server_handled_total", put); v != 1 {
		t.Errorf("handled Put OK = %v, want 1", v)
	}
	delete(put, "grpc_code")
	if v := metricValue(t, s.reg, "grpc_server_started_total", put); v != 2 {
		t.Errorf("started Put = %v, want 2", v)
	}
}

func TestMaintenanceAndCluster(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t)
	ep := s.addr

	st, err := s.cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, "status", st.Header, 1)
	if st.Version != "3.7.3" || st.StorageVersion != "3.7.0" || st.Leader != testMemberID || len(st.Errors) != 0 || st.DbSizeQuota != defaultQuotaBytes {
		t.Errorf("status = %v", st)
	}

	s.b.set(func(b *fakeBackend) {
		b.leader = 0
		b.alarms = []*pb.AlarmMember{{MemberID: testMemberID, Alarm: pb.AlarmType_NOSPACE}}
	})
	st, err = s.cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Errors) != 2 || st.Errors[0] != "etcdserver: no leader" || !strings.Contains(st.Errors[1], "NOSPACE") {
		t.Errorf("status errors without leader and with an alarm = %q", st.Errors)
	}

	al, err := s.cli.AlarmList(ctx)
	if err != nil || len(al.Alarms) != 1 {
		t.Fatalf("alarm list = %v, %v", al, err)
	}
	checkHeader(t, "alarm", al.Header, 1)
	if _, err := s.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: testMemberID, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if al, _ := s.cli.AlarmList(ctx); len(al.Alarms) != 0 {
		t.Errorf("alarms after disarm = %v", al.Alarms)
	}

	if _, err := s.cli.Defragment(ctx, ep); err != nil {
		t.Errorf("defragment must succeed: %v", err)
	}
	if _, err := s.cli.HashKV(ctx, ep, 0); status.Code(err) != codes.Unimplemented {
		t.Errorf("hashkv: %v", err)
	}
	if _, err := s.cli.MoveLeader(ctx, 2); status.Code(err) != codes.Unimplemented {
		t.Errorf("move leader: %v", err)
	}

	ml, err := s.cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 || ml.Members[0].Name != "m1" {
		t.Fatalf("member list = %v, %v", ml, err)
	}
	checkHeader(t, "member list", ml.Header, 0)
	if _, err := s.cli.MemberAdd(ctx, []string{"http://127.0.0.1:2390"}); status.Code(err) != codes.Unimplemented {
		t.Errorf("member add: %v", err)
	}
}

func TestUnimplementedServicesAndGRPCHealth(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t)

	if _, err := s.cli.Grant(ctx, 10); status.Code(err) != codes.Unimplemented {
		t.Errorf("lease grant: %v", err)
	}
	if _, err := s.cli.AuthStatus(ctx); status.Code(err) != codes.Unimplemented {
		t.Errorf("auth status: %v", err)
	}
	hr, err := healthpb.NewHealthClient(s.cli.ActiveConnection()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc health = %v, %v", hr, err)
	}
}

func TestRequestLargerThanTheLimitIsRefused(t *testing.T) {
	s := startServer(t, Options{MaxRequestBytes: 1024})
	ctx := testCtx(t)
	// Within MaxRequestBytes + the 512 KiB gRPC overhead: reaches the backend, which
	// enforces the precise limit (server.ErrRequestTooLarge).
	if _, err := s.cli.Put(ctx, "k", strings.Repeat("x", 256*1024)); err != nil {
		t.Errorf("put within the gRPC limit: %v", err)
	}
	if _, err := s.cli.Put(ctx, "k", strings.Repeat("x", 600*1024)); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("put over the gRPC limit: %v, want codes.ResourceExhausted", err)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestHTTPEndpointsShareTheClientPort(t *testing.T) {
	s := startServer(t, Options{})
	base := "http://" + s.addr

	if code, body := httpGet(t, base+"/health"); code != 200 || body != `{"health":"true","reason":""}` {
		t.Errorf("/health = %d %s", code, body)
	}
	code, body := httpGet(t, base+"/version")
	var v map[string]string
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v["etcdserver"] != "3.7.3" || v["etcdcluster"] != "3.7.0" {
		t.Errorf("/version = %d %s", code, body)
	}
	if _, err := s.cli.Put(testCtx(t), "k", "v"); err != nil { // gRPC on the same port
		t.Fatal(err)
	}
	if code, body := httpGet(t, base+"/metrics"); code != 200 ||
		!strings.Contains(body, `grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1`) {
		t.Errorf("/metrics = %d, missing the Put counter", code)
	}

	s.b.set(func(b *fakeBackend) {
		b.alarms = []*pb.AlarmMember{{MemberID: testMemberID, Alarm: pb.AlarmType_NOSPACE}}
	})
	if code, body := httpGet(t, base+"/health"); code != 503 || body != `{"health":"false","reason":"ALARM NOSPACE"}` {
		t.Errorf("/health with NOSPACE = %d %s", code, body)
	}
	if code, _ := httpGet(t, base+"/health?exclude=NOSPACE"); code != 200 {
		t.Errorf("/health excluding NOSPACE = %d", code)
	}
	s.b.set(func(b *fakeBackend) { b.alarms, b.leader = nil, 0 })
	if code, body := httpGet(t, base+"/health"); code != 503 || body != `{"health":"false","reason":"RAFT NO LEADER"}` {
		t.Errorf("/health without leader = %d %s", code, body)
	}
	if code, _ := httpGet(t, base+"/health?serializable=true"); code != 200 {
		t.Errorf("serializable /health without leader = %d", code)
	}
	s.b.set(func(b *fakeBackend) { b.leader, b.err = testMemberID, server.ErrTimeout })
	if code, body := httpGet(t, base+"/health"); code != 503 || !strings.Contains(body, "RANGE ERROR:etcdserver: request timed out") {
		t.Errorf("/health when reads fail = %d %s", code, body)
	}
}

func TestSlowRequestIsLoggedWithoutItsValue(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	// A threshold of 1ns makes every request slow.
	s := startServer(t, Options{Logger: zap.New(core), WarningUnaryRequestDuration: time.Nanosecond})
	if _, err := s.cli.Put(testCtx(t), "k", "secret-value"); err != nil {
		t.Fatal(err)
	}
	slow := logs.FilterMessage("request stats").All()
	if len(slow) != 1 {
		t.Fatalf("slow request logs = %v", logs.All())
	}
	fields := slow[0].ContextMap()
	if fields["response type"] != "/etcdserverpb.KV/Put" || fields["request count"] != int64(1) || strings.Contains(fmt.Sprint(fields), "secret-value") {
		t.Errorf("slow request log = %v", fields)
	}
}

func TestHealthCheckWithAndWithoutTheOptionalInterfaces(t *testing.T) {
	for _, plain := range []bool{false, true} {
		b := newFakeBackend()
		var be Backend = b
		if plain {
			be = plainBackend{b}
		}
		check := BackendHealthCheck(be, 5*time.Second)
		ctx := testCtx(t)
		if err := check(ctx, false, nil); err != nil {
			t.Errorf("plain=%v healthy: %v", plain, err)
		}
		b.set(func(b *fakeBackend) {
			b.alarms = []*pb.AlarmMember{{MemberID: testMemberID, Alarm: pb.AlarmType_CORRUPT}}
		})
		if err := check(ctx, false, nil); err == nil || err.Error() != "ALARM CORRUPT" {
			t.Errorf("plain=%v corrupt: %v", plain, err)
		}
		b.set(func(b *fakeBackend) { b.alarms, b.leader = nil, 0 })
		if err := check(ctx, false, nil); err == nil || err.Error() != "RAFT NO LEADER" {
			t.Errorf("plain=%v no leader: %v", plain, err)
		}
		if err := check(ctx, true, nil); err != nil {
			t.Errorf("plain=%v serializable without leader: %v", plain, err)
		}
	}
}

func TestRequireLeaderMetadata(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t)
	s.b.set(func(b *fakeBackend) { b.leader = 0 })
	if _, err := s.cli.Put(clientv3.WithRequireLeader(ctx), "k", "v"); !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Errorf("put requiring a leader without one: %v", err)
	}
	if _, err := s.cli.Put(ctx, "k", "v"); err != nil {
		t.Errorf("put not requiring a leader: %v", err)
	}
	s.b.set(func(b *fakeBackend) { b.leader = testMemberID })
	if _, err := s.cli.Put(clientv3.WithRequireLeader(ctx), "k", "v"); err != nil {
		t.Errorf("put requiring a leader with one: %v", err)
	}
}

func TestPprofServesRuntimeProfiles(t *testing.T) {
	mux := http.NewServeMux()
	RegisterPprof(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if code, body := httpGet(t, srv.URL+PathPprof+"/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("%s/ = %d", PathPprof, code)
	}
	if code, body := httpGet(t, srv.URL+PathPprof+"/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("%s/goroutine = %d", PathPprof, code)
	}
	if code, _ := httpGet(t, srv.URL+PathPprof+"/cmdline"); code != 200 {
		t.Errorf("%s/cmdline = %d", PathPprof, code)
	}
}
