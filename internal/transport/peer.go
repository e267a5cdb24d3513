package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Header names of the peer protocol.
const (
	hdrClusterID = "X-Metastore-Cluster-ID"
	hdrFrom      = "X-Metastore-From"
	hdrTo        = "X-Metastore-To"
)

const (
	pathMsgs     = "/raft/msgs"
	pathStream   = "/raft/stream"
	pathSnapshot = "/raft/snapshot"
	pathProbe    = "/raft/probe"
	pathVersion  = "/version"
)

func idString(id uint64) string { return strconv.FormatUint(id, 16) }

// peer is the sending side towards one member.
type peer struct {
	t  *Transport
	id uint64

	queue  chan []byte
	ctx    context.Context // canceled by stop
	cancel context.CancelFunc
	stopc  chan struct{}
	donec  chan struct{}
	once   sync.Once

	mu     sync.Mutex
	urls   []string
	urlIdx int
	// failing is set after a failed stream, to log once per outage.
	failing bool
	// upSince is when the peer was last seen up after an outage (or added): see
	// ActiveSince.
	upSince time.Time
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	p := &peer{t: t, id: id, queue: make(chan []byte, t.cfg.QueueSize),
		stopc: make(chan struct{}), donec: make(chan struct{}), upSince: time.Now()}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.setURLs(urls)
	return p
}

func (p *peer) setURLs(urls []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls = nil
	for _, u := range urls {
		p.urls = append(p.urls, strings.TrimSuffix(u, "/"))
	}
	p.urlIdx = 0
}

func (p *peer) getURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

// url returns the URL to use now.
func (p *peer) url() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.urls) == 0 {
		return ""
	}
	return p.urls[p.urlIdx%len(p.urls)]
}

// failed moves to the next URL after a failure on u.
func (p *peer) failed(u string, err error) {
	p.t.maybeRemoved(err)
	p.mu.Lock()
	if len(p.urls) > 0 && p.urls[p.urlIdx%len(p.urls)] == u {
		p.urlIdx++
	}
	first := !p.failing
	p.failing = true
	p.mu.Unlock()
	if first {
		p.t.lg.Warn("peer unreachable", zap.String("remote-member-id", idString(p.id)), zap.String("url", u), zap.Error(err))
	}
}

func (p *peer) succeeded() {
	p.mu.Lock()
	was := p.failing
	p.failing = false
	if was {
		p.upSince = time.Now()
	}
	p.mu.Unlock()
	if was {
		p.t.lg.Info("peer reachable again", zap.String("remote-member-id", idString(p.id)))
	}
}

// enqueue queues one marshalled message; false when the queue is full.
func (p *peer) enqueue(b []byte) bool {
	select {
	case p.queue <- b:
		return true
	default:
		return false
	}
}

func (p *peer) stop() {
	p.once.Do(func() {
		close(p.stopc)
		p.cancel()
	})
	<-p.donec
}

func (p *peer) setHeaders(req *http.Request) {
	req.Header.Set(hdrClusterID, idString(p.t.cfg.ClusterID))
	req.Header.Set(hdrFrom, idString(p.t.cfg.ID))
	req.Header.Set(hdrTo, idString(p.id))
}

// checkResponse turns a non-2xx answer into an error and drains the body so the
// connection can be reused.
func checkResponse(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	if resp.StatusCode == http.StatusGone {
		return fmt.Errorf("%w: %s", ErrMemberRemoved, strings.TrimSpace(string(msg)))
	}
	if resp.StatusCode == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %s", ErrClusterIDMismatch, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("transport: peer answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
}

// ActivePeers counts the peers that answer a probe on their peer URL within timeout,
// probing them all at once. etcd counts its open peer streams for the same purpose
// (whether to fast-forward the first election at start); our streams open only when
// there is something to send, so a start-up probe stands in for them.
func (t *Transport) ActivePeers(ctx context.Context, timeout time.Duration) int {
	return len(t.ReachablePeers(ctx, timeout))
}

// probe asks the peer's probe endpoint whether it is up.
func (p *peer) probe(ctx context.Context) error {
	u := p.url()
	if u == "" {
		return fmt.Errorf("transport: no URL for peer %s", idString(p.id))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+pathProbe, nil)
	if err != nil {
		return err
	}
	p.setHeaders(req)
	resp, err := p.t.snapClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return checkResponse(resp)
}
