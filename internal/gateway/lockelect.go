package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	gw "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	epb "github.com/metastore/metastore/internal/lockelect/v3electionpb"
	lpb "github.com/metastore/metastore/internal/lockelect/v3lockpb"
)

// registerLockElection serves etcd's v3lock and v3election paths on mux, as etcd's
// generated v3lockpb/gw and v3electionpb/gw handlers do (etcd's server module, which
// the product must not import, holds them): each path is a POST whose body is the
// request message (body "*"), forwarded to conn; Observe streams its responses as
// the gateway streams every server stream (newline-separated {"result": ...}, an error
// as a last {"error": ...}).
func registerLockElection(mux *gw.ServeMux, conn *grpc.ClientConn) error {
	lock, elect := lpb.NewLockClient(conn), epb.NewElectionClient(conn)
	for _, r := range []struct {
		path string
		h    gw.HandlerFunc
	}{
		{"/v3/lock/lock", unary(mux, "/v3lockpb.Lock/Lock", "/v3/lock/lock", lock.Lock)},
		{"/v3/lock/unlock", unary(mux, "/v3lockpb.Lock/Unlock", "/v3/lock/unlock", lock.Unlock)},
		{"/v3/election/campaign", unary(mux, "/v3electionpb.Election/Campaign", "/v3/election/campaign", elect.Campaign)},
		{"/v3/election/proclaim", unary(mux, "/v3electionpb.Election/Proclaim", "/v3/election/proclaim", elect.Proclaim)},
		{"/v3/election/leader", unary(mux, "/v3electionpb.Election/Leader", "/v3/election/leader", elect.Leader)},
		{"/v3/election/observe", serverStream(mux, "/v3electionpb.Election/Observe", "/v3/election/observe", elect.Observe)},
		{"/v3/election/resign", unary(mux, "/v3electionpb.Election/Resign", "/v3/election/resign", elect.Resign)},
	} {
		if err := mux.HandlePath(http.MethodPost, r.path, r.h); err != nil {
			return fmt.Errorf("%s: %w", r.path, err)
		}
	}
	return nil
}

// message is a request type: a proto message whose zero value is a pointer to fill.
type message[T any] interface {
	*T
	proto.Message
}

// decode reads the request body into m as the generated handlers do: an empty body is
// the zero request, a malformed one InvalidArgument; the rest of the body is drained.
func decode(in gw.Marshaler, req *http.Request, m proto.Message) error {
	if err := in.NewDecoder(req.Body).Decode(m); err != nil && !errors.Is(err, io.EOF) {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
	}
	return nil
}

// annotate is the generated handlers' prologue: the marshalers, and the outgoing
// context carrying the request's permanent headers (Authorization becomes the
// "authorization" metadata) and the method's name and path pattern.
func annotate(ctx context.Context, mux *gw.ServeMux, w http.ResponseWriter, req *http.Request, method, pattern string) (context.Context, gw.Marshaler, gw.Marshaler, bool) {
	in, out := gw.MarshalerForRequest(mux, req)
	actx, err := gw.AnnotateContext(ctx, mux, req, method, gw.WithHTTPPathPattern(pattern))
	if err != nil {
		gw.HTTPError(ctx, mux, out, w, req, err)
		return nil, nil, nil, false
	}
	return actx, in, out, true
}

// unary serves one unary method call.
func unary[Req any, R message[Req], Resp proto.Message](mux *gw.ServeMux, method, pattern string,
	call func(context.Context, R, ...grpc.CallOption) (Resp, error)) gw.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request, _ map[string]string) {
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		ctx, in, out, ok := annotate(ctx, mux, w, req, method, pattern)
		if !ok {
			return
		}
		var md gw.ServerMetadata
		r := R(new(Req))
		err := decode(in, req, r)
		var resp Resp
		if err == nil {
			resp, err = call(ctx, r, grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
		}
		ctx = gw.NewServerMetadataContext(ctx, md)
		if err != nil {
			gw.HTTPError(ctx, mux, out, w, req, err)
			return
		}
		gw.ForwardResponseMessage(ctx, mux, out, w, req, resp, mux.GetForwardResponseOptions()...)
	}
}

// serverStream serves one server-streaming method call.
func serverStream[Req any, R message[Req], Resp any, P message[Resp]](mux *gw.ServeMux, method, pattern string,
	call func(context.Context, R, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error)) gw.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request, _ map[string]string) {
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		ctx, in, out, ok := annotate(ctx, mux, w, req, method, pattern)
		if !ok {
			return
		}
		var md gw.ServerMetadata
		r := R(new(Req))
		err := decode(in, req, r)
		var stream grpc.ServerStreamingClient[Resp]
		if err == nil {
			stream, err = call(ctx, r)
		}
		if err == nil {
			md.HeaderMD, err = stream.Header()
		}
		ctx = gw.NewServerMetadataContext(ctx, md)
		if err != nil {
			gw.HTTPError(ctx, mux, out, w, req, err)
			return
		}
		gw.ForwardResponseStream(ctx, mux, out, w, req, func() (proto.Message, error) {
			m, err := stream.Recv()
			return P(m), err
		}, mux.GetForwardResponseOptions()...)
	}
}
