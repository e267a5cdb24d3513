package workload

import "context"

// ListPrefixForTest lists prefix with the list workload's pagination and returns the key count.
func ListPrefixForTest(ctx context.Context, e *Env, prefix string, pageSize int64) (int, error) {
	return listPrefix(ctx, e.Client(0), prefix, pageSize, false, false)
}
