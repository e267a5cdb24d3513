package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Reconnection backoff of a peer's stream: the first retry after a failure waits
// minBackoff, doubling on each failed attempt up to maxBackoff; a stream the peer
// accepted resets it.
const (
	minBackoff = 25 * time.Millisecond
	maxBackoff = time.Second
)

// errStreamClosed is a stream the peer ended.
var errStreamClosed = errors.New("transport: stream closed by peer")

// run keeps one message stream open to the peer while there is something to send and
// writes queued messages into it as they come. After a failed stream it reports the
// peer unreachable, drops what is queued (raft retransmits) and reconnects with
// backoff.
func (p *peer) run() {
	defer close(p.donec)
	backoff := minBackoff
	for {
		var first []byte
		select {
		case first = <-p.queue:
		case <-p.stopc:
			return
		}
		accepted, err := p.stream(first)
		if p.ctx.Err() != nil {
			return
		}
		if err == nil {
			continue
		}
		p.t.raft().ReportUnreachable(p.id)
		dropped := p.drain()
		p.t.cfg.Observer.PeerSendFailed(p.id, 1+dropped) // see Observer.PeerSendFailed
		p.t.lg.Debug("message stream failed", zap.String("remote-member-id", idString(p.id)),
			zap.Int("dropped", dropped), zap.Error(err))
		if accepted {
			backoff = minBackoff
		}
		select {
		case <-time.After(backoff):
		case <-p.stopc:
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// drain drops every queued message and returns how many.
func (p *peer) drain() int {
	n := 0
	for {
		select {
		case <-p.queue:
			n++
		default:
			return n
		}
	}
}

// stream sends first and then every queued message on one POST to pathStream, until
// the peer or the connection ends it or the peer stops. accepted tells whether the
// peer accepted the stream (answered 200).
func (p *peer) stream(first []byte) (accepted bool, err error) {
	u := p.url()
	if u == "" {
		return false, fmt.Errorf("transport: no URL for peer %s", idString(p.id))
	}
	ctx, cancel := context.WithCancel(p.ctx)
	body := &streamBody{p: p, ctx: ctx, acceptc: make(chan struct{})}
	body.setFrame(first)
	body.progress.Store(time.Now().UnixNano())
	watchdone := make(chan struct{})
	go func() {
		defer close(watchdone)
		p.watch(ctx, cancel, body)
	}()
	defer func() {
		cancel()
		<-watchdone
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+pathStream, body)
	if err != nil {
		return false, err
	}
	p.setHeaders(req)
	req.Header.Set("Content-Type", "application/octet-stream")
	// The connection carries this stream only: neither side reuses it afterwards (a
	// refused or broken stream leaves unread body behind).
	req.Close = true
	resp, err := p.t.streamClient.Do(req)
	if err != nil {
		if p.ctx.Err() == nil {
			p.failed(u, err)
		}
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := checkResponse(resp)
		if err == nil {
			err = fmt.Errorf("transport: peer answered %s to a message stream", resp.Status)
		}
		p.failed(u, err)
		return false, err
	}
	p.succeeded()
	close(body.acceptc)
	// The peer writes nothing more: the body ends when the stream does.
	_, err = io.Copy(io.Discard, resp.Body)
	if p.ctx.Err() != nil {
		return true, nil
	}
	if err == nil {
		err = errStreamClosed
	}
	p.failed(u, err)
	return true, err
}

// watch cancels a stream that makes no progress for RequestTimeout while messages wait
// (a peer that stopped reading, or a connection that hangs), so they are reported and
// the stream is redone.
func (p *peer) watch(ctx context.Context, cancel context.CancelFunc, body *streamBody) {
	limit := p.t.cfg.RequestTimeout
	tick := time.NewTicker(max(limit/5, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if len(p.queue) > 0 && time.Since(time.Unix(0, body.progress.Load())) > limit {
				p.t.lg.Debug("message stream stalled", zap.String("remote-member-id", idString(p.id)))
				cancel()
				return
			}
		}
	}
}

// streamBody is the body of a message stream: a reader of the peer's queue. Each Read
// returns the frames that are queued, without waiting for more, so the HTTP client
// writes (and flushes) them as one chunk at once; it blocks only while the queue is
// empty. Nothing is read before the peer accepted the stream, so messages queued
// meanwhile stay in the queue (and a peer that does not answer fills it).
type streamBody struct {
	p       *peer
	ctx     context.Context
	acceptc chan struct{} // closed when the peer answered 200

	hdr [binary.MaxVarintLen64]byte
	h   []byte // unsent part of the current frame's length prefix
	b   []byte // unsent part of the current frame's message
	// progress is the UnixNano time Read last returned data or found the queue empty.
	progress atomic.Int64
}

func (s *streamBody) setFrame(m []byte) {
	s.h = binary.AppendUvarint(s.hdr[:0], uint64(len(m)))
	s.b = m
}

func (s *streamBody) Read(p []byte) (int, error) {
	select {
	case <-s.acceptc:
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
	n := 0
	for n < len(p) {
		if len(s.h) > 0 {
			c := copy(p[n:], s.h)
			s.h = s.h[c:]
			n += c
			continue
		}
		if len(s.b) > 0 {
			c := copy(p[n:], s.b)
			s.b = s.b[c:]
			n += c
			continue
		}
		if n > 0 {
			select {
			case m := <-s.p.queue:
				s.setFrame(m)
				continue
			default:
				s.progress.Store(time.Now().UnixNano())
				s.p.t.cfg.Observer.PeerSent(s.p.id, n)
				return n, nil
			}
		}
		s.progress.Store(time.Now().UnixNano())
		select {
		case m := <-s.p.queue:
			s.setFrame(m)
		case <-s.p.stopc:
			return 0, io.EOF // the peer is removed or the transport stops: end cleanly
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
	}
	s.progress.Store(time.Now().UnixNano())
	s.p.t.cfg.Observer.PeerSent(s.p.id, n)
	return n, nil
}
