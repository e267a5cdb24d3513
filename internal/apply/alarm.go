package apply

import (
	"errors"
	"fmt"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// alarmSet is the set of active alarms, at most one per (type, member).
type alarmSet map[pb.AlarmType]map[uint64]*pb.AlarmMember

func (s alarmSet) has(t pb.AlarmType) bool { return len(s[t]) > 0 }

// list returns the alarms of type t (every type for NONE), sorted by type then member.
func (s alarmSet) list(t pb.AlarmType) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for at, ms := range s {
		if t != pb.AlarmType_NONE && at != t {
			continue
		}
		for _, m := range ms {
			out = append(out, &pb.AlarmMember{MemberID: m.MemberID, Alarm: m.Alarm})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Alarm != out[j].Alarm {
			return out[i].Alarm < out[j].Alarm
		}
		return out[i].MemberID < out[j].MemberID
	})
	return out
}

// encode is the value stored under storage.MetaAlarms: an AlarmResponse whose Alarms
// are the sorted list, marshaled deterministically.
func (s alarmSet) encode() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&pb.AlarmResponse{Alarms: s.list(pb.AlarmType_NONE)})
}

func loadAlarms(r storage.Reader) (alarmSet, error) {
	s := alarmSet{}
	v, err := r.Get(storage.MetaAlarms)
	if errors.Is(err, storage.ErrNotFound) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("apply: reading alarms: %w", err)
	}
	var stored pb.AlarmResponse
	if err := proto.Unmarshal(v, &stored); err != nil {
		return nil, fmt.Errorf("apply: decoding alarms: %w", err)
	}
	for _, m := range stored.Alarms {
		s.add(m.MemberID, m.Alarm)
	}
	return s, nil
}

// add activates (member, t) and reports whether it was not active yet.
func (s alarmSet) add(member uint64, t pb.AlarmType) (*pb.AlarmMember, bool) {
	ms := s[t]
	if ms == nil {
		ms = map[uint64]*pb.AlarmMember{}
		s[t] = ms
	}
	if m := ms[member]; m != nil {
		return m, false
	}
	m := &pb.AlarmMember{MemberID: member, Alarm: t}
	ms[member] = m
	return m, true
}

// alarm applies an AlarmRequest, as etcd's alarm store does:
//
//   - GET lists the active alarms of the type (NONE: all);
//   - ACTIVATE of NONE does nothing; otherwise it answers the alarm, new or already active;
//   - DEACTIVATE answers the alarm it removed, or nothing if it was not active.
//
// The response header's revision is left 0 for the server to fill, as etcd does. The
// alarms take effect for the entries after this one in the same batch; Alarms() shows
// them once the batch is committed.
func (a *Applier) alarm(b storage.Batch, r *pb.AlarmRequest) (*Result, error) {
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{}}
	changed := false
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = a.alarms.list(r.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			break
		}
		m, added := a.alarms.add(r.MemberID, r.Alarm)
		resp.Alarms = []*pb.AlarmMember{{MemberID: m.MemberID, Alarm: m.Alarm}}
		changed = added
	case pb.AlarmRequest_DEACTIVATE:
		m := a.alarms[r.Alarm][r.MemberID]
		if m == nil {
			break
		}
		delete(a.alarms[r.Alarm], r.MemberID)
		resp.Alarms = []*pb.AlarmMember{{MemberID: m.MemberID, Alarm: m.Alarm}}
		changed = true
	}
	if changed {
		if err := a.writeAlarms(b); err != nil {
			return nil, err
		}
	}
	return &Result{Resp: resp}, nil
}

func (a *Applier) writeAlarms(b storage.Batch) error {
	if len(a.alarms.list(pb.AlarmType_NONE)) == 0 {
		return b.Delete(storage.MetaAlarms)
	}
	v, err := a.alarms.encode()
	if err != nil {
		return err
	}
	return b.Set(storage.MetaAlarms, v)
}
