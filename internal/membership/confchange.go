package membership

import (
	"encoding/json"
	"fmt"
)

// ConfChangeContext is what etcd puts in raftpb.ConfChange.Context of an add (AddNode,
// AddLearnerNode) and of a promotion (AddNode with IsPromote): the member as JSON, its
// fields at the top level beside "isPromote" (etcd's membership.ConfigChangeContext).
// An update (UpdateNode) carries the Member alone; a removal carries nothing.
type ConfChangeContext struct {
	Member
	IsPromote bool `json:"isPromote"`
}

// EncodeAddContext is the Context of the conf change that adds m.
func EncodeAddContext(m *Member) ([]byte, error) {
	return json.Marshal(ConfChangeContext{Member: *m.Clone()})
}

// EncodePromoteContext is the Context of the conf change that promotes learner id: the
// member with its ID only, and isPromote, as etcd.
func EncodePromoteContext(id uint64) ([]byte, error) {
	return json.Marshal(ConfChangeContext{Member: Member{ID: id}, IsPromote: true})
}

// EncodeUpdateContext is the Context of the conf change that sets the peer URLs of id.
func EncodeUpdateContext(id uint64, peerURLs []string) ([]byte, error) {
	return json.Marshal(Member{ID: id, PeerURLs: append([]string(nil), peerURLs...)})
}

// DecodeAddContext decodes the Context of an add or a promotion.
func DecodeAddContext(b []byte) (*ConfChangeContext, error) {
	var c ConfChangeContext
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("membership: decoding conf change context: %w", err)
	}
	return &c, nil
}

// DecodeUpdateContext decodes the Context of an update.
func DecodeUpdateContext(b []byte) (*Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("membership: decoding conf change context: %w", err)
	}
	return &m, nil
}

// MarshalMembers is the body of etcd's GET /members on the peer port: a JSON array of
// the members, each {"id","name","peerURLs","clientURLs","isLearner"} as etcd encodes
// its membership.Member. The cluster ID goes in the X-Etcd-Cluster-ID header.
func MarshalMembers(c *Cluster) ([]byte, error) {
	ms := c.Members
	if ms == nil {
		ms = []*Member{}
	}
	return json.Marshal(ms)
}

// UnmarshalMembers decodes what MarshalMembers (or an etcd member) answers.
func UnmarshalMembers(b []byte) ([]*Member, error) {
	var ms []*Member
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("membership: decoding members: %w", err)
	}
	for _, m := range ms {
		if m == nil {
			return nil, fmt.Errorf("membership: decoding members: null member")
		}
	}
	return ms, nil
}

// The checks of etcd's --strict-reconfig-check on the member list (etcd's
// RaftCluster.IsReadyTo*): a started member is one that has published its name.

// ReadyToAddVotingMember reports whether the started voting members would still be a
// quorum once a new (not yet started) voter is added. Adding a second member to a
// cluster of one started member is allowed (etcd's restore procedure).
func (c *Cluster) ReadyToAddVotingMember() bool {
	members, started := 1, 0
	for _, m := range c.VotingMembers() {
		if m.IsStarted() {
			started++
		}
		members++
	}
	if started == 1 && members == 2 {
		return true
	}
	return started >= members/2+1
}

// ReadyToRemoveVotingMember reports whether the started voting members other than id
// are a quorum of the voting members other than id.
func (c *Cluster) ReadyToRemoveVotingMember(id uint64) bool {
	members, started := 0, 0
	for _, m := range c.VotingMembers() {
		if m.ID == id {
			continue
		}
		if m.IsStarted() {
			started++
		}
		members++
	}
	return started >= members/2+1
}

// ReadyToPromoteMember reports whether the started voters, counting the learner as a
// started voter, are a quorum of the voters after the promotion.
func (c *Cluster) ReadyToPromoteMember(id uint64) bool {
	members, started := 1, 1
	for _, m := range c.VotingMembers() {
		if m.IsStarted() {
			started++
		}
		members++
	}
	return started >= members/2+1
}
