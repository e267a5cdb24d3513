package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// kv answers Range with one key and records the request's metadata; a key "missing"
// fails as etcd fails a request whose auth token is invalid.
type kv struct {
	pb.UnimplementedKVServer
	mu sync.Mutex
	md metadata.MD
}

func (k *kv) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	k.mu.Lock()
	k.md = md
	k.mu.Unlock()
	if string(r.Key) == "missing" {
		return nil, rpctypes.ErrGRPCInvalidAuthToken
	}
	return &pb.RangeResponse{
		Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 3, RaftTerm: 4},
		Kvs:    []*mvccpb.KeyValue{{Key: r.Key, Value: []byte("bar"), CreateRevision: 2, ModRevision: 3, Version: 1}},
		Count:  1,
	}, nil
}

func serve(t *testing.T) (*kv, *httptest.Server) {
	t.Helper()
	gs := grpc.NewServer()
	k := &kv{}
	pb.RegisterKVServer(gs, k)
	conn, err := InProcess(gs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := New(ctx, conn, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); cancel(); conn.Close(); gs.Stop() })
	return k, hs
}

func post(t *testing.T, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.ReplaceAll(string(b), " ", "") // protojson may add spaces
}

// The JSON is etcd's: proto field names, base64 bytes, 64-bit integers as strings,
// zero values left out; errors are the gateway's {"code","message"} with the HTTP
// status of the gRPC code; the Authorization header is the "authorization" metadata.
func TestGatewayJSONErrorsAndToken(t *testing.T) {
	k, hs := serve(t)
	code, body := post(t, hs.URL+"/v3/kv/range", `{"key": "Zm9v", "unknown": 1}`, map[string]string{"Authorization": "tok-1"})
	want := `{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},` +
		`"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"1","value":"YmFy"}],"count":"1"}`
	if code != 200 || body != want {
		t.Errorf("range = %d %s, want 200 %s", code, body, want)
	}
	k.mu.Lock()
	tok := k.md.Get("authorization")
	k.mu.Unlock()
	if len(tok) != 1 || tok[0] != "tok-1" {
		t.Errorf("authorization metadata = %v, want [tok-1]", tok)
	}
	code, body = post(t, hs.URL+"/v3/kv/range", `{"key": "bWlzc2luZw=="}`, nil)
	if code != http.StatusUnauthorized || body != `{"code":16,"message":"etcdserver:invalidauthtoken"}` {
		t.Errorf("failing range = %d %s", code, body)
	}
	if code, body = post(t, hs.URL+"/v3/kv/range", `{`, nil); code != http.StatusBadRequest || !strings.HasPrefix(body, `{"code":3,`) {
		t.Errorf("malformed JSON = %d %s", code, body)
	}
}

func TestNewWithoutConnection(t *testing.T) {
	if _, err := New(context.Background(), nil, nil); err != ErrNoConn {
		t.Errorf("New(nil conn) = %v, want ErrNoConn", err)
	}
}
