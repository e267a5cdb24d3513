package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/version"
	"go.uber.org/zap"
)

// HTTP endpoints served on the client port next to gRPC, as etcd does.
const (
	PathMetrics = "/metrics"
	PathHealth  = "/health"
	PathVersion = "/version"

	// ClusterVersion is the cluster version we report (etcd reports major.minor.0).
	ClusterVersion = "3.7.0"
)

// NewHTTPMux returns the HTTP handler of the client port: /metrics from reg, /health
// checked against b with BackendHealthCheck (counted in etcd's
// etcd_server_health_success and _failures), /livez and /readyz with etcd's sub-checks
// (healthz.go), and /version.
func NewHTTPMux(b Backend, reg *prometheus.Registry, lg *zap.Logger) *http.ServeMux {
	if lg == nil {
		lg = zap.NewNop()
	}
	var rr prometheus.Registerer
	if reg != nil {
		rr = reg
	}
	mux := http.NewServeMux()
	mux.Handle(PathMetrics, MetricsHandler(reg))
	mux.Handle(PathHealth, HealthHandler(lg, countedHealthCheck(rr, lg, BackendHealthCheck(b, 5*time.Second))))
	mux.Handle(PathVersion, VersionHandler())
	pm := newProbeMetrics(rr, lg)
	registerProbes(mux, PathLivez[1:], livezChecks(b), pm, lg)
	registerProbes(mux, PathReadyz[1:], readyzChecks(b), pm, lg)
	return mux
}

// countedHealthCheck counts check's answers in etcd's etcd_server_health_success and
// etcd_server_health_failures.
func countedHealthCheck(reg prometheus.Registerer, lg *zap.Logger, check HealthCheck) HealthCheck {
	ok := register(reg, lg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_success",
		Help: "The total number of successful health checks",
	}))
	failed := register(reg, lg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_failures",
		Help: "The total number of failed health checks",
	}))
	return func(ctx context.Context, serializable bool, excludedAlarms []string) error {
		err := check(ctx, serializable, excludedAlarms)
		if err != nil {
			failed.Inc()
		} else {
			ok.Inc()
		}
		return err
	}
}

// PathPprof is where --enable-pprof serves Go's runtime profiles, as etcd.
const PathPprof = "/debug/pprof"

// RegisterPprof adds Go's runtime profiling handlers under PathPprof to mux (etcd's
// --enable-pprof); named profiles (heap, goroutine, mutex, block, ...) are served by the
// index handler. Like etcd it samples one mutex event in five unless a rate is set.
func RegisterPprof(mux *http.ServeMux) {
	if runtime.SetMutexProfileFraction(-1) == 0 {
		runtime.SetMutexProfileFraction(5)
	}
	mux.HandleFunc(PathPprof+"/", pprof.Index)
	mux.HandleFunc(PathPprof+"/cmdline", pprof.Cmdline)
	mux.HandleFunc(PathPprof+"/profile", pprof.Profile)
	mux.HandleFunc(PathPprof+"/symbol", pprof.Symbol)
	mux.HandleFunc(PathPprof+"/trace", pprof.Trace)
}

// MetricsHandler serves the metrics of reg in the Prometheus text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// HealthCheck reports whether the member is healthy; the error's message is the reason
// shown to the caller. serializable asks for a local check only (no leader or quorum
// needed); alarms named in excludedAlarms (e.g. "NOSPACE") are ignored.
type HealthCheck func(ctx context.Context, serializable bool, excludedAlarms []string) error

// healthJSON is etcd's /health body.
type healthJSON struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// HealthHandler serves /health like etcd: GET only; query parameters
// "serializable=true" and "exclude=ALARM" (repeatable) are passed to check. Healthy:
// 200 {"health":"true","reason":""}; unhealthy: 503 {"health":"false","reason":"..."}.
func HealthHandler(lg *zap.Logger, check HealthCheck) http.Handler {
	if lg == nil {
		lg = zap.NewNop()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		var excluded []string
		for _, a := range q["exclude"] {
			if a != "" {
				excluded = append(excluded, a)
			}
		}
		h := healthJSON{Health: "true"}
		if err := check(r.Context(), q.Get("serializable") == "true", excluded); err != nil {
			h = healthJSON{Health: "false", Reason: err.Error()}
		}
		d, _ := json.Marshal(h)
		if h.Health != "true" {
			lg.Warn("/health error", zap.String("output", string(d)))
			http.Error(w, string(d), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(d)
	})
}

// BackendHealthCheck is etcd's /health check against b, in etcd's order and with its
// reasons: an active alarm not excluded ("ALARM NOSPACE", "ALARM CORRUPT",
// "ALARM UNKNOWN"); no leader, unless serializable ("RAFT NO LEADER"); a one-key range
// read failing within timeout ("RANGE ERROR:<error>"). Alarms and leader come from
// the optional AlarmLister and LeaderReporter when b implements them (local, no raft
// round), else from Alarm GET and Status, each bounded by timeout.
func BackendHealthCheck(b Backend, timeout time.Duration) HealthCheck {
	return func(ctx context.Context, serializable bool, excludedAlarms []string) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()

		var alarms []*pb.AlarmMember
		if al, ok := b.(AlarmLister); ok {
			alarms = al.Alarms()
		} else {
			ar, err := b.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
			if err != nil {
				return fmt.Errorf("ALARM ERROR:%s", err)
			}
			alarms = ar.GetAlarms()
		}
		for _, a := range alarms {
			if slices.Contains(excludedAlarms, a.GetAlarm().String()) {
				continue
			}
			switch a.GetAlarm() {
			case pb.AlarmType_NOSPACE:
				return errors.New("ALARM NOSPACE")
			case pb.AlarmType_CORRUPT:
				return errors.New("ALARM CORRUPT")
			default:
				return errors.New("ALARM UNKNOWN")
			}
		}

		if !serializable {
			var leader uint64
			if lr, ok := b.(LeaderReporter); ok {
				leader = lr.Leader()
			} else if st, err := b.Status(ctx); err == nil {
				leader = st.GetLeader()
			}
			if leader == 0 {
				return errors.New("RAFT NO LEADER")
			}
		}

		// etcd reads the empty key; we read "\x00", the smallest valid key, so that a
		// backend rejecting empty keys still answers.
		_, err := b.Range(ctx, &pb.RangeRequest{Key: []byte{0}, KeysOnly: true, Limit: 1, Serializable: serializable})
		if err != nil {
			return fmt.Errorf("RANGE ERROR:%s", err)
		}
		return nil
	}
}

// VersionHandler serves /version as etcd v3.7.3 does:
// {"etcdserver":"3.7.3","etcdcluster":"3.7.0","storage":"3.7.0"}.
func VersionHandler() http.Handler {
	body, _ := json.Marshal(version.Versions{Server: version.Version, Cluster: ClusterVersion, Storage: storageVersion})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", http.MethodGet+", "+http.MethodHead)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}
