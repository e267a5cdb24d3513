package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/storage"
)

// Every sentinel of a lower layer that a client can meet becomes the server error
// grpcapi maps, however deeply it was wrapped, and keeps its message and identity.
func TestTranslateErrorIntoServerErrors(t *testing.T) {
	for _, tc := range []struct {
		lower, want error
	}{
		{mvcc.ErrCompacted, ErrCompacted},
		{mvcc.ErrFutureRev, ErrFutureRev},
		{mvcc.ErrClosed, ErrStopped},
		{apply.ErrNoSpace, ErrNoSpace},
		{apply.ErrLeaseNotFound, ErrLeaseNotFound},
		{apply.ErrTooManyOps, ErrTooManyOps},
		{apply.ErrDuplicateKey, ErrDuplicateKey},
		{apply.ErrEmptyKey, ErrEmptyKey},
		{apply.ErrKeyNotFound, ErrKeyNotFound},
		{apply.ErrCorrupt, ErrCorrupt},
		{apply.ErrUnsupported, ErrUnimplemented},
		{raftnode.ErrStopped, ErrStopped},
		{storage.ErrClosed, ErrStopped},
	} {
		for _, err := range []error{tc.lower, fmt.Errorf("apply entry 7: %w", tc.lower), fmt.Errorf("txn: %w", fmt.Errorf("range: %w", tc.lower))} {
			got := TranslateError(err)
			if !errors.Is(got, tc.want) {
				t.Errorf("%v: translated %v does not match %v", err, got, tc.want)
			}
			if !errors.Is(got, tc.lower) || got.Error() != err.Error() {
				t.Errorf("%v: translated %q lost the original error", err, got)
			}
		}
	}
}

// The server's own names for the state machine's errors read as the originals: a
// server error returned directly (the quota check's ErrNoSpace) and the translation of
// apply's look the same in a log.
func TestServerErrorsKeepTheLowerMessages(t *testing.T) {
	for _, p := range translations {
		if p.own == ErrStopped || p.own == ErrUnimplemented {
			continue // deliberately etcd's "server stopped" and our "not implemented"
		}
		if p.own.Error() != p.lower.Error() {
			t.Errorf("server %q, lower layer %q", p.own, p.lower)
		}
	}
}

func TestTranslateErrorLeavesOthersAlone(t *testing.T) {
	if TranslateError(nil) != nil {
		t.Error("nil must stay nil")
	}
	other := errors.New("disk on fire")
	if got := TranslateError(other); got != other {
		t.Errorf("unknown error became %v", got)
	}
	own := fmt.Errorf("propose: %w", ErrNoLeader)
	if got := TranslateError(own); got != own {
		t.Errorf("server error became %v", got)
	}
	twice := TranslateError(TranslateError(mvcc.ErrCompacted))
	if _, ok := twice.(*translatedError); !ok || errors.Unwrap(twice.(*translatedError).cause) != nil {
		t.Errorf("translating twice wraps twice: %#v", twice)
	}
}

// translate is what the exported methods defer: it rewrites their named error.
func TestTranslateRewritesTheResult(t *testing.T) {
	f := func() (err error) {
		defer translate(&err)
		return fmt.Errorf("read: %w", storage.ErrClosed)
	}
	if err := f(); !errors.Is(err, ErrStopped) {
		t.Errorf("got %v, want it to match ErrStopped", err)
	}
}
