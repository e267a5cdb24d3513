// Package membership owns cluster membership as etcd v3.7.3 defines it: member and cluster
// IDs (derived exactly as etcd derives them, so a metastore cluster bootstrapped with the
// same flags has the IDs etcd would print), parsing and checking --initial-cluster, the
// member list kept by the state machine (its encoding and the checks of etcd's
// configuration changes) and its conversion to etcdserverpb.Member.
//
// It is pure: no I/O, no clock (callers pass the time for IDs of added members), no raft.
// It must not touch storage: the apply helper stores Marshal's bytes under
// storage.MetaMembers.
package membership

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Sentinel errors. Texts are etcd's (etcdserver/api/membership/errors.go).
var (
	ErrIDRemoved        = errors.New("membership: ID removed")
	ErrIDExists         = errors.New("membership: ID exists")
	ErrIDNotFound       = errors.New("membership: ID not found")
	ErrPeerURLexists    = errors.New("membership: peerURL exists")
	ErrMemberNotLearner = errors.New("membership: can only promote a learner member")
	ErrTooManyLearners  = errors.New("membership: too many learner members in cluster")
)

// DefaultMaxLearners is etcd's default for --max-learners.
const DefaultMaxLearners = 1

// Member is one member of the cluster. PeerURLs are kept sorted. Name and ClientURLs are
// empty until the member has started and published them (etcd: "unstarted" member).
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// IDString is how etcd prints member and cluster IDs (types.ID.String): lowercase hex.
func IDString(id uint64) string { return fmt.Sprintf("%x", id) }

// ComputeMemberID is etcd's computeMemberID: the first 8 bytes, big endian, of
// SHA-1(sorted peer URLs concatenated + cluster token [+ decimal Unix seconds of now]).
// Bootstrap members use now == nil; members added at runtime (MemberAdd) use the time
// of the request, so that re-adding the same URLs yields a new ID.
func ComputeMemberID(peerURLs []string, token string, now *time.Time) uint64 {
	us := append([]string(nil), peerURLs...)
	sort.Strings(us)
	b := []byte(strings.Join(us, ""))
	b = append(b, token...)
	if now != nil {
		b = append(b, fmt.Sprintf("%d", now.Unix())...)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// NewMember is etcd's NewMember: ID from the (normalised, sorted) peer URLs and token.
func NewMember(name string, peerURLs []string, token string, now *time.Time) *Member {
	us := append([]string(nil), peerURLs...)
	sort.Strings(us)
	return &Member{ID: ComputeMemberID(us, token, now), Name: name, PeerURLs: us}
}

// ComputeClusterID is etcd's RaftCluster.genID: first 8 bytes, big endian, of the SHA-1
// of the member IDs sorted ascending, each as 8 big-endian bytes.
func ComputeClusterID(memberIDs []uint64) uint64 {
	ids := append([]uint64(nil), memberIDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// Clone returns a deep copy.
func (m *Member) Clone() *Member {
	if m == nil {
		return nil
	}
	c := *m
	c.PeerURLs = append([]string(nil), m.PeerURLs...)
	c.ClientURLs = append([]string(nil), m.ClientURLs...)
	return &c
}

// IsStarted reports whether the member has published its name (etcd's IsStarted).
func (m *Member) IsStarted() bool { return m.Name != "" }

// ToPB converts to the MemberList/MemberAdd wire type.
func (m *Member) ToPB() *etcdserverpb.Member {
	return &etcdserverpb.Member{
		ID:         m.ID,
		Name:       m.Name,
		PeerURLs:   append([]string(nil), m.PeerURLs...),
		ClientURLs: append([]string(nil), m.ClientURLs...),
		IsLearner:  m.IsLearner,
	}
}

// ParseInitialCluster parses --initial-cluster ("name=url,name=url2,other=url3") as
// etcd's types.NewURLsMap does: entries split on ",", name and URL on the first "=",
// a name may repeat to give several URLs; each URL is checked as etcd's types.NewURLs
// (scheme http, https, unix or unixs; http(s) with "host:port" and no path). URLs are
// normalised (url.URL.String) and sorted per name. An empty string yields an empty map.
func ParseInitialCluster(s string) (map[string][]string, error) {
	raw := map[string][]string{}
	for _, entry := range strings.Split(s, ",") {
		if entry == "" {
			continue
		}
		name, u, _ := strings.Cut(entry, "=")
		raw[name] = append(raw[name], u)
	}
	out := make(map[string][]string, len(raw))
	for name, us := range raw {
		parsed, err := ParseURLs(us)
		if err != nil {
			return nil, err
		}
		out[name] = parsed
	}
	return out, nil
}

// ParseURL checks one member URL as etcd's types.NewURLs does: the scheme must be
// http, https, unix or unixs, and http(s) URLs must be "host:port" with no path.
func ParseURL(in string) (*url.URL, error) {
	in = strings.TrimSpace(in)
	u, err := url.Parse(in)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf(`URL address does not have the form "host:port": %s`, in)
		}
		if u.Path != "" {
			return nil, fmt.Errorf("URL must not contain a path: %s", in)
		}
	case "unix", "unixs":
	default:
		return nil, fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", in)
	}
	return u, nil
}

// ParseURLs checks and normalises URLs as etcd's types.NewURLs (sorted, duplicates kept).
func ParseURLs(strs []string) ([]string, error) {
	if len(strs) == 0 {
		return nil, errors.New("no valid URLs given")
	}
	out := make([]string, 0, len(strs))
	for _, in := range strs {
		u, err := ParseURL(in)
		if err != nil {
			return nil, err
		}
		out = append(out, u.String())
	}
	sort.Strings(out)
	return out, nil
}

// FormatInitialCluster is etcd's URLsMap.String: "name=url" pairs, sorted, comma-joined.
func FormatInitialCluster(m map[string][]string) string {
	var pairs []string
	for name, us := range m {
		for _, u := range us {
			pairs = append(pairs, name+"="+u)
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// VerifyBootstrap applies etcd's checks for starting a member of a new cluster
// (config.ServerConfig.VerifyBootstrap), with etcd's messages: the local name is in the
// initial cluster, its URLs there equal --initial-advertise-peer-urls (compared as
// strings; etcd also resolves DNS names, which we do not), no URL appears twice, and the
// cluster is not empty.
func VerifyBootstrap(name string, advertisePeerURLs []string, initialCluster map[string][]string) error {
	if err := hasLocalMember(name, initialCluster); err != nil {
		return err
	}
	urls := append([]string(nil), initialCluster[name]...)
	ap := append([]string(nil), advertisePeerURLs...)
	sort.Strings(urls)
	sort.Strings(ap)
	if strings.Join(urls, ",") != strings.Join(ap, ",") {
		inCluster, inAdvertise := map[string]bool{}, map[string]bool{}
		for _, u := range urls {
			inCluster[u] = true
		}
		for _, u := range ap {
			inAdvertise[u] = true
		}
		// etcd's netutil.URLStringsEqual reason, with a = advertise and b = cluster URLs.
		reason := ""
		if len(ap) != len(urls) {
			reason = fmt.Sprintf("len(%q) != len(%q)", ap, urls)
		} else {
			for i := range ap {
				if ap[i] != urls[i] {
					reason = fmt.Sprintf("resolved urls: %q != %q", ap[i], urls[i])
					break
				}
			}
		}
		var missing []string
		for _, u := range urls {
			if !inAdvertise[u] {
				missing = append(missing, name+"="+u)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("--initial-cluster has %s but missing from --initial-advertise-peer-urls=%s (%s)",
				strings.Join(missing, ","), strings.Join(ap, ","), reason)
		}
		for _, u := range ap {
			if !inCluster[u] {
				missing = append(missing, u)
			}
		}
		return fmt.Errorf("--initial-advertise-peer-urls has %s but missing from --initial-cluster=%s",
			strings.Join(missing, ","), FormatInitialCluster(map[string][]string{name: ap}))
	}
	if err := checkDuplicateURL(initialCluster); err != nil {
		return err
	}
	if FormatInitialCluster(initialCluster) == "" {
		return errors.New("initial cluster unset and no discovery endpoints found")
	}
	return nil
}

// VerifyJoinExisting applies etcd's checks for --initial-cluster-state=existing: the local
// name is in the initial cluster and no URL appears twice.
func VerifyJoinExisting(name string, initialCluster map[string][]string) error {
	if err := hasLocalMember(name, initialCluster); err != nil {
		return err
	}
	return checkDuplicateURL(initialCluster)
}

func hasLocalMember(name string, initialCluster map[string][]string) error {
	if initialCluster[name] == nil {
		return fmt.Errorf("couldn't find local name %q in the initial cluster configuration", name)
	}
	return nil
}

func checkDuplicateURL(initialCluster map[string][]string) error {
	seen := map[string]bool{}
	for _, us := range initialCluster {
		for _, u := range us {
			if seen[u] {
				return fmt.Errorf("initial cluster %s has duplicate url", FormatInitialCluster(initialCluster))
			}
			seen[u] = true
		}
	}
	return nil
}
