package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// --client-request-rate: a client past its burst gets etcd's "too many requests", and
// the refusals are counted; --max-client-connections closes connections beyond it.
func TestClientLimits(t *testing.T) {
	c := newCluster(t, ours(), 1, "--client-request-rate=0.001", "--client-request-burst=5", "--max-client-connections=3")
	m := c.members[0]
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxT(t)
	var refused error
	for i := 0; i < 10 && refused == nil; i++ {
		_, refused = cli.Put(ctx, "k", "v")
	}
	if !errors.Is(refused, rpctypes.ErrTooManyRequests) {
		t.Fatalf("puts past the burst: %v, want %v", refused, rpctypes.ErrTooManyRequests)
	}
	if txt := metricsText(t, m.clientURL); !strings.Contains(txt, "metastore_rate_limited_requests_total 1") {
		t.Errorf("/metrics has no metastore_rate_limited_requests_total 1:\n%s", grepLines(txt, "metastore_"))
	}

	// One connection is the client's; two more fit, the fourth is closed at once.
	addr := strings.TrimPrefix(m.clientURL, "http://")
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	last := conns[2]
	_ = last.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := last.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Errorf("read on the connection beyond the limit: %v, want it closed", err)
	}
	conns[0].Close()
	conns[1].Close()
	// Once they are closed, HTTP works again (the closes reach the server).
	deadline := time.Now().Add(10 * time.Second)
	for {
		txt, err := tryMetrics(m.clientURL)
		if err == nil {
			// At least the fourth connection (tries of this loop may have been refused too).
			if !regexp.MustCompile(`(?m)^metastore_connections_refused_total [1-9]`).MatchString(txt) {
				t.Errorf("/metrics has no metastore_connections_refused_total >= 1:\n%s", grepLines(txt, "metastore_"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics after closing connections: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tryMetrics(base string) (string, error) {
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The gateway is limited by the HTTP client's own address: an X-Forwarded-For (or a
// Grpc-Metadata-X-Forwarded-For) the client sends does not buy it a fresh bucket.
func TestGatewayRateLimitIgnoresClientsForwardedFor(t *testing.T) {
	c := newCluster(t, ours(), 1, "--client-request-rate=0.001", "--client-request-burst=3")
	m := c.members[0]
	var last string
	for i := 0; i < 6; i++ {
		req, err := http.NewRequest(http.MethodPost, m.clientURL+"/v3/kv/put", strings.NewReader(`{"key":"Zm9v","value":"YmFy"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i+1))
		req.Header.Set("Grpc-Metadata-X-Forwarded-For", fmt.Sprintf("10.1.0.%d", i+1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
	}
	if !strings.Contains(last, "etcdserver: too many requests") {
		t.Fatalf("the sixth put over HTTP with a burst of 3 answered %s, want etcd's too many requests", last)
	}
}
