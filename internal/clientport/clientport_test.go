package clientport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/internal/tlsconf"
	"github.com/metastore/metastore/internal/tlsconf/tlsconftest"
)

func mustURL(t *testing.T, s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}

func get(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// healthServer is a gRPC server with only the standard health service: enough to
// tell whether a gRPC call reached it.
func healthServer() *grpc.Server {
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, health.NewServer())
	return g
}

// checkGRPC makes one gRPC call to addr with creds.
func checkGRPC(addr string, creds credentials.TransportCredentials) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// On a plaintext address, gRPC (h2c) and HTTP/1.1 share the listener; stopping the
// gRPC server ends Serve.
func TestServePlaintext(t *testing.T) {
	l, err := tlsconf.ListenClient(mustURL(t, "http://127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	g := healthServer()
	done := make(chan error, 1)
	go func() {
		done <- Serve(l, true, nil, g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	}()
	addr := l.Addr().String()
	if err := checkGRPC(addr, insecure.NewCredentials()); err != nil {
		t.Errorf("plaintext gRPC: %v", err)
	}
	if body, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/x"); err != nil || body != "HTTP/1.1" {
		t.Errorf("http GET: %q %v", body, err)
	}
	g.GracefulStop()
	if err := <-done; err != nil {
		t.Errorf("Serve after GracefulStop: %v", err)
	}
}

func TestServeNeedsPlaintextOrACertificate(t *testing.T) {
	l, err := tlsconf.ListenClient(mustURL(t, "https://127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := Serve(l, false, nil, healthServer(), http.NotFoundHandler()); !errors.Is(err, tlsconf.ErrNoCertificate) {
		t.Errorf("TLS address without a certificate: %v, want ErrNoCertificate", err)
	}
}

// TestServeTLS: over TLS, gRPC (HTTP/2 via ALPN) reaches the gRPC server and
// plain HTTP requests the handler; with a plaintext URL on the same address both
// kinds of connection are served.
func TestServeTLS(t *testing.T) {
	p := tlsconftest.NewPKI(t)
	for _, plaintext := range []bool{false, true} {
		g := healthServer()
		l, err := tlsconf.ListenClient(mustURL(t, "https://127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
		go func() { done <- Serve(l, plaintext, p.Info(), g, h) }()
		addr := l.Addr().String()

		check := func(creds credentials.TransportCredentials) error { return checkGRPC(addr, creds) }
		if err := check(credentials.NewTLS(p.ClientConfig(true))); err != nil {
			t.Errorf("plaintext %v: gRPC over TLS: %v", plaintext, err)
		}
		if err := check(credentials.NewTLS(p.ClientConfig(false))); err == nil {
			t.Errorf("plaintext %v: gRPC over TLS without a client certificate was served", plaintext)
		}
		if err := check(insecure.NewCredentials()); (err == nil) != plaintext {
			t.Errorf("plaintext %v: plaintext gRPC: %v", plaintext, err)
		}
		for _, h2 := range []bool{false, true} {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientConfig(true), ForceAttemptHTTP2: h2}, Timeout: 5 * time.Second}
			body, err := get(c, "https://"+addr+"/x")
			if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]; err != nil || body != want {
				t.Errorf("plaintext %v: https GET (h2 %v): %q %v, want %q", plaintext, h2, body, err, want)
			}
		}
		body, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/x")
		if (err == nil && body == "HTTP/1.1") != plaintext {
			t.Errorf("plaintext %v: http GET: %q %v", plaintext, body, err)
		}

		g.Stop()
		l.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after its listener was closed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its listener was closed")
		}
	}
}

func TestServeReturnsDespiteASilentConnection(t *testing.T) {
	defer func(d time.Duration) { sniffTimeout = d }(sniffTimeout)
	sniffTimeout = 50 * time.Millisecond

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := healthServer()
	served := make(chan error, 1)
	go func() { served <- Serve(l, true, nil, g, http.NotFoundHandler()) }()
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The mux closes the silent connection once the sniff timeout passes.
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection that sends nothing must be closed")
	}
	g.Stop()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
