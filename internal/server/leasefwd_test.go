package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestLeaseBatchOnLeader: the leader's PathLeaseBatch renews every lease of the batch
// and answers their TTLs in order, -1 for an unknown lease; it is served by the same
// handler cmd mounts on the peer port.
func TestLeaseBatchOnLeader(t *testing.T) {
	s := startTestMember(t, 0).srv
	ctx := context.Background()
	var ids []int64
	for _, ttl := range []int64{5, 30} {
		g, err := s.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.ID)
	}
	ids = append(ids, 0x4242)
	// The lessor is promoted by its loop shortly after the member leads.
	waitFor(t, 10*time.Second, "a primary lessor", s.lessor.Primary)

	h := httptest.NewServer(s.LeaseHandler())
	defer h.Close()
	resp, err := http.Post(h.URL+PathLeaseBatch, "application/protobuf", bytes.NewReader(encodePackedInt64(ids)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v: %s", resp.StatusCode, err, buf.String())
	}
	ttls, err := decodePackedInt64(buf.Bytes())
	if err != nil || !slices.Equal(ttls, []int64{5, 30, ttlNotFound}) {
		t.Fatalf("answer %v, %v; want [5 30 -1]", ttls, err)
	}
}

func TestPackedInt64RoundTrip(t *testing.T) {
	in := []int64{0, 1, -1, -2, 1 << 62, 42}
	out, err := decodePackedInt64(encodePackedInt64(in))
	if err != nil || !slices.Equal(in, out) {
		t.Fatalf("round trip %v -> %v, %v", in, out, err)
	}
	if _, err := decodePackedInt64([]byte{0x0a, 0x05, 0x80}); err == nil {
		t.Fatal("a truncated body decodes")
	}
}
