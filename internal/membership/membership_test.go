package membership

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// IDs printed by the real etcd v3.7.3 (`etcdctl member list -w json` and its log) for:
//
//	etcd --name infraN --initial-advertise-peer-urls http://127.0.0.1:N2380 \
//	  --initial-cluster-token etcd-cluster-1 \
//	  --initial-cluster infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380
const (
	threeNodeCluster = "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"
	infra1ID         = 0x8211f1d0f64f3269 // 9372538179322589801
	infra2ID         = 0x91bc3c398fb3c146 // 10501334649042878790
	infra3ID         = 0xfd422379fda50e48 // 18249187646912138824
	threeNodeID      = 0xef37ad9dc622a7c4 // 17237436991929493444
)

func TestIDsEqualRealEtcds(t *testing.T) {
	ic, err := ParseInitialCluster(threeNodeCluster)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCluster("etcd-cluster-1", ic)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != threeNodeID {
		t.Errorf("cluster ID = %s, etcd says %s", IDString(c.ID), IDString(threeNodeID))
	}
	want := map[string]uint64{"infra1": infra1ID, "infra2": infra2ID, "infra3": infra3ID}
	if len(c.Members) != 3 {
		t.Fatalf("members = %v", c.Members)
	}
	for _, m := range c.Members {
		if m.ID != want[m.Name] {
			t.Errorf("%s: ID %s, etcd says %s", m.Name, IDString(m.ID), IDString(want[m.Name]))
		}
	}
	if got := c.MemberIDs(); !reflect.DeepEqual(got, []uint64{infra1ID, infra2ID, infra3ID}) {
		t.Errorf("member IDs not ascending: %x", got)
	}
	if IDString(infra1ID) != "8211f1d0f64f3269" {
		t.Errorf("IDString = %s", IDString(infra1ID))
	}

	// A plain `etcd` (name default, http://localhost:2380, token etcd-cluster) is the
	// well-known member 8e9e05c52164694d of cluster cdf818194e3a8c32.
	ic, _ = ParseInitialCluster("default=http://localhost:2380")
	c, _ = NewCluster("etcd-cluster", ic)
	if c.ID != 0xcdf818194e3a8c32 || c.Members[0].ID != 0x8e9e05c52164694d {
		t.Errorf("default single member: cluster %s member %s", IDString(c.ID), IDString(c.Members[0].ID))
	}
}

func TestMemberIDDependsOnSortedURLsTokenAndTime(t *testing.T) {
	a := ComputeMemberID([]string{"http://b:2", "http://a:1"}, "tok", nil)
	b := ComputeMemberID([]string{"http://a:1", "http://b:2"}, "tok", nil)
	if a != b {
		t.Error("member ID depends on the order of peer URLs")
	}
	if a == ComputeMemberID([]string{"http://a:1", "http://b:2"}, "other", nil) {
		t.Error("member ID does not depend on the token")
	}
	now := time.Unix(1700000000, 0)
	if a == ComputeMemberID([]string{"http://a:1", "http://b:2"}, "tok", &now) {
		t.Error("member ID of an added member does not depend on the time")
	}
	if ComputeClusterID([]uint64{3, 1, 2}) != ComputeClusterID([]uint64{1, 2, 3}) {
		t.Error("cluster ID depends on member order")
	}
}

func TestParseInitialCluster(t *testing.T) {
	got, err := ParseInitialCluster("a=http://10.0.0.2:2380,b=http://10.0.0.3:2380,a=http://10.0.0.1:2380,,")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"a": {"http://10.0.0.1:2380", "http://10.0.0.2:2380"}, "b": {"http://10.0.0.3:2380"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if FormatInitialCluster(got) != "a=http://10.0.0.1:2380,a=http://10.0.0.2:2380,b=http://10.0.0.3:2380" {
		t.Errorf("format = %s", FormatInitialCluster(got))
	}
	if m, err := ParseInitialCluster(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
	// etcd prefixes these with "error setting up initial cluster: ".
	for in, msg := range map[string]string{
		"a=foo://x":             "URL scheme must be http, https, unix, or unixs: foo://x",
		"a=":                    "URL scheme must be http, https, unix, or unixs: ",
		"a":                     "URL scheme must be http, https, unix, or unixs: ",
		"a=http://10.0.0.1":     `URL address does not have the form "host:port": http://10.0.0.1`,
		"a=http://10.0.0.1:1/p": "URL must not contain a path: http://10.0.0.1:1/p",
	} {
		if _, err := ParseInitialCluster(in); err == nil || err.Error() != msg {
			t.Errorf("%q: %v, want %q", in, err, msg)
		}
	}
}

func TestVerifyBootstrapMessagesAreEtcds(t *testing.T) {
	// Each message was read from the real etcd v3.7.3 started with these flags.
	for _, tc := range []struct {
		name, cluster string
		advertise     []string
		want          string
	}{
		{"a", "a=http://127.0.0.1:42380", []string{"http://127.0.0.1:42381"},
			`--initial-cluster has a=http://127.0.0.1:42380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:42381 (resolved urls: "http://127.0.0.1:42381" != "http://127.0.0.1:42380")`},
		{"a", "a=http://127.0.0.1:42380,a=http://127.0.0.1:42381", []string{"http://127.0.0.1:42380"},
			`--initial-cluster has a=http://127.0.0.1:42381 but missing from --initial-advertise-peer-urls=http://127.0.0.1:42380 (len(["http://127.0.0.1:42380"]) != len(["http://127.0.0.1:42380" "http://127.0.0.1:42381"]))`},
		{"a", "a=http://127.0.0.1:42380", []string{"http://127.0.0.1:42380", "http://127.0.0.1:42382"},
			`--initial-advertise-peer-urls has http://127.0.0.1:42382 but missing from --initial-cluster=a=http://127.0.0.1:42380,a=http://127.0.0.1:42382`},
		{"b", "a=http://127.0.0.1:42380", []string{"http://127.0.0.1:42380"},
			`couldn't find local name "b" in the initial cluster configuration`},
		{"a", "a=http://127.0.0.1:42380,b=http://127.0.0.1:42380", []string{"http://127.0.0.1:42380"},
			`initial cluster a=http://127.0.0.1:42380,b=http://127.0.0.1:42380 has duplicate url`},
		// etcd does not resolve "localhost": plain `etcd --initial-advertise-peer-urls http://127.0.0.1:2380` fails.
		{"default", "default=http://localhost:2380", []string{"http://127.0.0.1:2380"},
			`--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2380 (resolved urls: "http://127.0.0.1:2380" != "http://localhost:2380")`},
		{"a", "a=http://127.0.0.1:42380,b=http://127.0.0.1:42381", []string{"http://127.0.0.1:42380"}, ""},
	} {
		ic, err := ParseInitialCluster(tc.cluster)
		if err != nil {
			t.Fatal(err)
		}
		err = VerifyBootstrap(tc.name, tc.advertise, ic)
		if (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("%s %s %v:\n got %v\nwant %s", tc.name, tc.cluster, tc.advertise, err, tc.want)
		}
	}
	ic, _ := ParseInitialCluster("a=http://1.1.1.1:1,b=http://2.2.2.2:2")
	if err := VerifyJoinExisting("c", ic); err == nil || !strings.Contains(err.Error(), `couldn't find local name "c"`) {
		t.Errorf("join existing: %v", err)
	}
}

func TestConfigurationChanges(t *testing.T) {
	ic, _ := ParseInitialCluster(threeNodeCluster)
	c, _ := NewCluster("etcd-cluster-1", ic)
	now := time.Unix(1700000000, 0)

	learner := NewMember("", []string{"http://127.0.0.1:42380"}, "etcd-cluster-1", &now)
	learner.IsLearner = true
	if err := c.AddMember(learner, DefaultMaxLearners); err != nil {
		t.Fatal(err)
	}
	second := NewMember("", []string{"http://127.0.0.1:52380"}, "etcd-cluster-1", &now)
	second.IsLearner = true
	for _, tc := range []struct {
		name string
		err  error
		got  error
	}{
		{"second learner over the limit", ErrTooManyLearners, c.AddMember(second, DefaultMaxLearners)},
		{"same ID again", ErrIDExists, c.AddMember(learner, 5)},
		{"peer URL in use", ErrPeerURLexists, c.AddMember(&Member{ID: 7, PeerURLs: []string{"http://127.0.0.1:12380"}}, 1)},
		{"promote a voter", ErrMemberNotLearner, c.PromoteMember(infra1ID)},
		{"promote unknown", ErrIDNotFound, c.PromoteMember(12345)},
		{"update to a used URL", ErrPeerURLexists, c.UpdatePeerURLs(infra1ID, []string{"http://127.0.0.1:22380"})},
		{"remove unknown", ErrIDNotFound, c.RemoveMember(12345)},
	} {
		if !errors.Is(tc.got, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.err)
		}
	}
	if len(c.Members) != 4 {
		t.Fatalf("failed changes modified the cluster: %d members", len(c.Members))
	}
	if err := c.PromoteMember(learner.ID); err != nil || c.Member(learner.ID).IsLearner {
		t.Errorf("promote: %v", err)
	}
	if err := c.UpdatePeerURLs(infra1ID, []string{"http://127.0.0.1:12381", "http://127.0.0.1:12380"}); err != nil {
		t.Errorf("update own URLs: %v", err)
	}
	if err := c.SetAttributes(infra1ID, "infra1", []string{"http://127.0.0.1:12379"}); err != nil {
		t.Error(err)
	}
	if err := c.RemoveMember(infra2ID); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"remove twice":    c.RemoveMember(infra2ID),
		"re-add removed":  c.AddMember(&Member{ID: infra2ID, PeerURLs: []string{"http://127.0.0.1:22380"}}, 1),
		"promote removed": c.PromoteMember(infra2ID),
	} {
		if !errors.Is(err, ErrIDRemoved) {
			t.Errorf("%s: %v, want ErrIDRemoved", name, err)
		}
	}
	if c.ID != threeNodeID {
		t.Error("cluster ID changed with membership")
	}

	// Round trip through the state machine encoding.
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, d) {
		t.Errorf("round trip:\n%+v\n%+v", c, d)
	}
	if _, err := Unmarshal([]byte("{")); err == nil {
		t.Error("garbage decoded")
	}

	// MemberList view.
	pb := c.PB()
	if len(pb) != 3 || pb[0].ID != infra1ID || pb[0].Name != "infra1" ||
		!reflect.DeepEqual(pb[0].PeerURLs, []string{"http://127.0.0.1:12380", "http://127.0.0.1:12381"}) ||
		!reflect.DeepEqual(pb[0].ClientURLs, []string{"http://127.0.0.1:12379"}) {
		t.Errorf("PB = %v", pb)
	}
	// Clones do not share state.
	cl := c.Clone()
	cl.Members[0].PeerURLs[0] = "x"
	if c.Members[0].PeerURLs[0] == "x" {
		t.Error("Clone shares peer URLs")
	}
}
