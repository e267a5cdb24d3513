package server

import (
	"errors"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/storage"
)

// translations pairs each sentinel of the layers below with the server error it
// becomes. A lower error not listed here leaves the server unchanged (grpcapi sends it
// as codes.Unknown with its message).
var translations = []struct {
	lower, own error
}{
	{mvcc.ErrCompacted, ErrCompacted},
	{mvcc.ErrFutureRev, ErrFutureRev},
	{apply.ErrNoSpace, ErrNoSpace},
	{apply.ErrLeaseNotFound, ErrLeaseNotFound},
	{apply.ErrLeaseExists, ErrLeaseExists},
	{apply.ErrLeaseTTLTooLarge, ErrLeaseTTLTooLarge},
	{apply.ErrTooManyOps, ErrTooManyOps},
	{apply.ErrDuplicateKey, ErrDuplicateKey},
	{apply.ErrEmptyKey, ErrEmptyKey},
	{apply.ErrKeyNotFound, ErrKeyNotFound},
	{apply.ErrCorrupt, ErrCorrupt},
	{apply.ErrNotCapable, ErrNotCapable},
	// Membership changes the member list refused (confchange.go).
	{membership.ErrIDRemoved, ErrIDRemoved},
	{membership.ErrIDExists, ErrIDExists},
	{membership.ErrIDNotFound, ErrIDNotFound},
	{membership.ErrPeerURLexists, ErrPeerURLExists},
	{membership.ErrMemberNotLearner, ErrMemberNotLearner},
	{membership.ErrTooManyLearners, ErrTooManyLearners},
	// A request kind the state machine does not implement yet (auth).
	{apply.ErrUnsupported, ErrUnimplemented},
	// Lower layers stopped under a request during shutdown: etcd's "server stopped",
	// which clients treat as retryable on another endpoint.
	{raftnode.ErrStopped, ErrStopped},
	{storage.ErrClosed, ErrStopped},
	{mvcc.ErrClosed, ErrStopped},
}

// TranslateError returns err in server's vocabulary: if err is (or wraps) a sentinel
// of apply, mvcc, raftnode or storage listed above, the result also matches
// (errors.Is) the server error it stands for. The result keeps err's message and
// still matches err's own sentinels, so logs and callers inside the module lose
// nothing. nil, errors already matching a server sentinel and unknown errors are
// returned unchanged.
//
// Every exported method of Server passes its error through it, so callers never need
// to import the lower layers to recognise an error. It is exported so that the layers
// above can check, in their tests, the whole chain from a lower error to what they
// send.
func TranslateError(err error) error {
	if err == nil {
		return nil
	}
	for _, t := range translations {
		if errors.Is(err, t.own) {
			return err
		}
		if errors.Is(err, t.lower) {
			return &translatedError{own: t.own, cause: err}
		}
	}
	return err
}

// translate is the form the exported methods use: defer translate(&err).
func translate(err *error) { *err = TranslateError(*err) }

// translatedError is a lower layer's error seen as the server error own.
type translatedError struct {
	own   error // a server sentinel
	cause error // the lower layer's error, as it was returned
}

func (e *translatedError) Error() string   { return e.cause.Error() }
func (e *translatedError) Unwrap() []error { return []error{e.own, e.cause} }
