package auth

import (
	"bytes"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
)

// An interval is [begin, end) over user keys; a nil end is +infinity.
type interval struct{ begin, end []byte }

// permInterval is the interval a permission or request (key, rangeEnd) covers, as
// etcd reads it: an empty rangeEnd is the single key, "\x00" means every key from key
// on.
func permInterval(key, rangeEnd []byte) interval {
	switch {
	case len(rangeEnd) == 0:
		return interval{key, append(append([]byte{}, key...), 0)}
	case len(rangeEnd) == 1 && rangeEnd[0] == 0:
		return interval{key, nil}
	default:
		return interval{key, rangeEnd}
	}
}

// endLess orders ends with nil as +infinity.
func endLess(a, b []byte) bool {
	if a == nil {
		return false
	}
	if b == nil {
		return true
	}
	return bytes.Compare(a, b) < 0
}

// merged is a sorted union of disjoint, non-touching intervals.
type merged []interval

func merge(ivs []interval) merged {
	sort.Slice(ivs, func(i, j int) bool { return bytes.Compare(ivs[i].begin, ivs[j].begin) < 0 })
	var out merged
	for _, iv := range ivs {
		if iv.end != nil && bytes.Compare(iv.end, iv.begin) <= 0 {
			continue // empty
		}
		if n := len(out); n > 0 && (out[n-1].end == nil || bytes.Compare(iv.begin, out[n-1].end) <= 0) {
			if endLess(out[n-1].end, iv.end) {
				out[n-1].end = iv.end
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// contains reports whether the union covers want entirely. An empty want (end at or
// before begin) is covered when its begin key is: an inverted range reads nothing,
// but it is never allowed on keys the user may not touch at all.
func (m merged) contains(want interval) bool {
	if want.end != nil && bytes.Compare(want.end, want.begin) <= 0 {
		want = permInterval(want.begin, nil)
	}
	// the last interval starting at or before want.begin
	i := sort.Search(len(m), func(i int) bool { return bytes.Compare(m[i].begin, want.begin) > 0 }) - 1
	if i < 0 {
		return false
	}
	iv := m[i]
	if iv.end != nil && bytes.Compare(iv.end, want.begin) <= 0 {
		return false
	}
	return !endLess(iv.end, want.end)
}

// userPerms are a user's merged read and write permissions.
type userPerms struct {
	root        bool
	read, write merged
}

func (st *State) computePerms(u *authpb.User) *userPerms {
	p := &userPerms{}
	var rd, wr []interval
	for _, rn := range u.Roles {
		if rn == RootRole {
			p.root = true
		}
		r := st.roles[rn]
		if r == nil {
			continue
		}
		for _, perm := range r.KeyPermission {
			iv := permInterval(perm.Key, perm.RangeEnd)
			switch perm.PermType {
			case authpb.Permission_READ:
				rd = append(rd, iv)
			case authpb.Permission_WRITE:
				wr = append(wr, iv)
			case authpb.Permission_READWRITE:
				rd, wr = append(rd, iv), append(wr, iv)
			}
		}
	}
	p.read, p.write = merge(rd), merge(wr)
	return p
}

// ValidPermissionRange is etcd's isValidPermissionRange: a non-empty key, and a
// range end that is empty, "\x00", or after the key.
func ValidPermissionRange(key, rangeEnd []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(rangeEnd) == 0 || (len(rangeEnd) == 1 && rangeEnd[0] == 0) {
		return true
	}
	return bytes.Compare(key, rangeEnd) < 0
}
