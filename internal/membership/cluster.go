package membership

import (
	"encoding/json"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Cluster is the membership the state machine keeps: the cluster ID (fixed when the
// cluster is bootstrapped), the members sorted by ID, and the IDs of removed members,
// which may never come back (etcd's ErrIDRemoved).
//
// A Cluster is a plain value without locks: the apply loop owns it; readers get Clone()s.
// The change methods check a change exactly as etcd's ValidateConfigurationChange does
// and apply it only if the check passes; a failed change leaves the Cluster untouched.
type Cluster struct {
	ID      uint64    `json:"id"`
	Members []*Member `json:"members"`
	Removed []uint64  `json:"removed,omitempty"`
}

// NewCluster is etcd's NewClusterFromURLsMap: one member per name of the parsed
// --initial-cluster, IDs from its peer URLs and the token, and the cluster ID from the
// member IDs. For --initial-cluster-state=existing the ID computed here is provisional:
// the joining member adopts the running cluster's ID (NewClusterFromMembers).
func NewCluster(token string, initialCluster map[string][]string) (*Cluster, error) {
	c := &Cluster{}
	names := make([]string, 0, len(initialCluster))
	for name := range initialCluster {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := NewMember(name, initialCluster[name], token, nil)
		if c.Member(m.ID) != nil {
			return nil, fmt.Errorf("member exists with identical ID %v", m)
		}
		if m.ID == 0 {
			return nil, fmt.Errorf("cannot use %x as member id", 0)
		}
		c.insert(m)
	}
	c.ID = ComputeClusterID(c.MemberIDs())
	return c, nil
}

// NewClusterFromMembers builds a Cluster with a known ID (a member joining a running cluster).
func NewClusterFromMembers(id uint64, members []*Member) *Cluster {
	c := &Cluster{ID: id}
	for _, m := range members {
		c.insert(m.Clone())
	}
	return c
}

func (c *Cluster) insert(m *Member) {
	i := sort.Search(len(c.Members), func(i int) bool { return c.Members[i].ID >= m.ID })
	c.Members = append(c.Members, nil)
	copy(c.Members[i+1:], c.Members[i:])
	c.Members[i] = m
}

// Member returns the member with that ID, or nil.
func (c *Cluster) Member(id uint64) *Member {
	i := sort.Search(len(c.Members), func(i int) bool { return c.Members[i].ID >= id })
	if i < len(c.Members) && c.Members[i].ID == id {
		return c.Members[i]
	}
	return nil
}

// MemberByName returns the member with that name, or nil (etcd: first match by ID order).
func (c *Cluster) MemberByName(name string) *Member {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// MemberIDs returns the member IDs, ascending.
func (c *Cluster) MemberIDs() []uint64 {
	ids := make([]uint64, len(c.Members))
	for i, m := range c.Members {
		ids[i] = m.ID
	}
	return ids
}

// IsRemoved reports whether id belonged to a member that was removed.
func (c *Cluster) IsRemoved(id uint64) bool {
	for _, r := range c.Removed {
		if r == id {
			return true
		}
	}
	return false
}

// VotingMembers returns the members that are not learners.
func (c *Cluster) VotingMembers() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if !m.IsLearner {
			out = append(out, m)
		}
	}
	return out
}

// Clone returns a deep copy.
func (c *Cluster) Clone() *Cluster {
	out := &Cluster{ID: c.ID, Removed: append([]uint64(nil), c.Removed...)}
	for _, m := range c.Members {
		out.Members = append(out.Members, m.Clone())
	}
	return out
}

// PB returns the members as MemberList returns them: ordered by ID.
func (c *Cluster) PB() []*etcdserverpb.Member {
	out := make([]*etcdserverpb.Member, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ToPB()
	}
	return out
}

func (c *Cluster) peerURLInUse(u string, except uint64) bool {
	for _, m := range c.Members {
		if m.ID == except {
			continue
		}
		for _, p := range m.PeerURLs {
			if p == u {
				return true
			}
		}
	}
	return false
}

// AddMember adds m (voter or learner). Errors, in etcd's order: ErrIDRemoved, ErrIDExists,
// ErrPeerURLexists, ErrTooManyLearners (a learner beyond maxLearners; etcd's default is
// DefaultMaxLearners).
func (c *Cluster) AddMember(m *Member, maxLearners int) error {
	switch {
	case c.IsRemoved(m.ID):
		return ErrIDRemoved
	case c.Member(m.ID) != nil:
		return ErrIDExists
	}
	for _, u := range m.PeerURLs {
		if c.peerURLInUse(u, 0) {
			return ErrPeerURLexists
		}
	}
	if m.IsLearner {
		learners := 0
		for _, x := range c.Members {
			if x.IsLearner {
				learners++
			}
		}
		if learners+1 > maxLearners {
			return ErrTooManyLearners
		}
	}
	c.insert(m.Clone())
	return nil
}

// RemoveMember removes the member and remembers its ID. Errors: ErrIDRemoved, ErrIDNotFound.
func (c *Cluster) RemoveMember(id uint64) error {
	if c.IsRemoved(id) {
		return ErrIDRemoved
	}
	i := sort.Search(len(c.Members), func(i int) bool { return c.Members[i].ID >= id })
	if i == len(c.Members) || c.Members[i].ID != id {
		return ErrIDNotFound
	}
	c.Members = append(c.Members[:i], c.Members[i+1:]...)
	c.Removed = append(c.Removed, id)
	sort.Slice(c.Removed, func(a, b int) bool { return c.Removed[a] < c.Removed[b] })
	return nil
}

// UpdatePeerURLs replaces a member's peer URLs. Errors: ErrIDRemoved, ErrIDNotFound,
// ErrPeerURLexists (a URL used by another member).
func (c *Cluster) UpdatePeerURLs(id uint64, peerURLs []string) error {
	if c.IsRemoved(id) {
		return ErrIDRemoved
	}
	m := c.Member(id)
	if m == nil {
		return ErrIDNotFound
	}
	for _, u := range peerURLs {
		if c.peerURLInUse(u, id) {
			return ErrPeerURLexists
		}
	}
	us := append([]string(nil), peerURLs...)
	sort.Strings(us)
	m.PeerURLs = us
	return nil
}

// PromoteMember turns a learner into a voter. Errors: ErrIDRemoved, ErrIDNotFound,
// ErrMemberNotLearner.
func (c *Cluster) PromoteMember(id uint64) error {
	if c.IsRemoved(id) {
		return ErrIDRemoved
	}
	m := c.Member(id)
	switch {
	case m == nil:
		return ErrIDNotFound
	case !m.IsLearner:
		return ErrMemberNotLearner
	}
	m.IsLearner = false
	return nil
}

// SetAttributes records the name and client URLs a started member publishes. Errors:
// ErrIDRemoved, ErrIDNotFound (etcd logs and skips these; the caller decides).
func (c *Cluster) SetAttributes(id uint64, name string, clientURLs []string) error {
	if c.IsRemoved(id) {
		return ErrIDRemoved
	}
	m := c.Member(id)
	if m == nil {
		return ErrIDNotFound
	}
	m.Name = name
	m.ClientURLs = append([]string(nil), clientURLs...)
	return nil
}

// Marshal encodes the Cluster for the state machine (JSON; stable field names:
// "id", "members" [{"id","name","peerURLs","clientURLs","isLearner"}], "removed").
// The apply helper stores it under storage.MetaMembers.
func Marshal(c *Cluster) ([]byte, error) { return json.Marshal(c) }

// Unmarshal decodes what Marshal produced. Members and removed IDs are re-sorted.
func Unmarshal(b []byte) (*Cluster, error) {
	var c Cluster
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("membership: decoding member list: %w", err)
	}
	for _, m := range c.Members {
		if m == nil {
			return nil, fmt.Errorf("membership: decoding member list: null member")
		}
	}
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].ID < c.Members[j].ID })
	sort.Slice(c.Removed, func(i, j int) bool { return c.Removed[i] < c.Removed[j] })
	return &c, nil
}
