package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

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
	pathSnapshot = "/raft/snapshot"
	pathProbe    = "/raft/probe"
	pathVersion  = "/version"

	// maxBatchBytes bounds one POST of messages (a message may exceed it alone).
	maxBatchBytes = 4 << 20
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
	// failing is set after a failed POST, to log once per outage.
	failing bool
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	p := &peer{t: t, id: id, queue: make(chan []byte, t.cfg.QueueSize),
		stopc: make(chan struct{}), donec: make(chan struct{})}
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

// run sends what accumulates in the queue, one POST at a time.
func (p *peer) run() {
	defer close(p.donec)
	var body bytes.Buffer
	for {
		var first []byte
		select {
		case first = <-p.queue:
		case <-p.stopc:
			return
		}
		body.Reset()
		n := 1
		appendFrame(&body, first)
	drain:
		for body.Len() < maxBatchBytes {
			select {
			case b := <-p.queue:
				appendFrame(&body, b)
				n++
			default:
				break drain
			}
		}
		if err := p.post(body.Bytes()); err != nil {
			p.t.raft().ReportUnreachable(p.id)
			p.t.lg.Debug("dropped messages", zap.String("remote-member-id", idString(p.id)), zap.Int("count", n), zap.Error(err))
		}
	}
}

func appendFrame(w *bytes.Buffer, b []byte) {
	w.Write(binary.AppendUvarint(nil, uint64(len(b))))
	w.Write(b)
}

func (p *peer) post(body []byte) error {
	u := p.url()
	if u == "" {
		return fmt.Errorf("transport: no URL for peer %s", idString(p.id))
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.t.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+pathMsgs, bytes.NewReader(body))
	if err != nil {
		return err
	}
	p.setHeaders(req)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := p.t.client.Do(req)
	if err != nil {
		p.failed(u, err)
		return err
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		p.failed(u, err)
		return err
	}
	p.succeeded()
	return nil
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
	if resp.StatusCode == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %s", ErrClusterIDMismatch, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("transport: peer answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
}
