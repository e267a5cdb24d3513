package grpcapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// /livez and /readyz, as etcd v3.7.3's etcdhttp: each is a list of named checks served
// at the root path (all checks but those named by "?exclude=", repeatable) and at
// "<root>/<check>" (that check alone). A passing request answers 200 "ok\n" (with
// "?verbose" the lines "[+]<check> ok" before it); a failing one 503 with the lines
// "[+]<check> ok" / "[-]<check> failed: <error>" of every check run. Only GET is
// allowed. Unlike etcd, whose order is a map's, checks run and print in the order
// below.
const (
	PathLivez  = "/livez"
	PathReadyz = "/readyz"

	healthStatusSuccess = "success"
	healthStatusError   = "error"
)

// namedCheck is one sub-check of /livez or /readyz; a nil error is a pass.
type namedCheck struct {
	name  string
	check func(ctx context.Context) error
}

// probeMetrics are etcd's etcd_server_healthcheck gauge and
// etcd_server_healthchecks_total counter (labels type = livez|readyz, name = check,
// and status on the counter).
type probeMetrics struct {
	gauge   *prometheus.GaugeVec
	counter *prometheus.CounterVec
}

func newProbeMetrics(reg prometheus.Registerer, lg *zap.Logger) probeMetrics {
	return probeMetrics{
		gauge: register(reg, lg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "server", Name: "healthcheck",
			Help: "The result of each kind of healthcheck.",
		}, []string{"type", "name"})),
		counter: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "healthchecks_total",
			Help: "The total number of each kind of healthcheck.",
		}, []string{"type", "name", "status"})),
	}
}

func (m probeMetrics) record(kind, name, status string) {
	v := 0.0
	if status == healthStatusSuccess {
		v = 1
	}
	m.gauge.WithLabelValues(kind, name).Set(v)
	m.counter.WithLabelValues(kind, name, status).Inc()
}

// livezChecks are etcd's /livez checks: the member can serve a local read.
func livezChecks(b Backend) []namedCheck {
	return []namedCheck{{"serializable_read", readCheck(b, true)}}
}

// readyzChecks are etcd's /readyz checks, in etcd's registration order.
func readyzChecks(b Backend) []namedCheck {
	return []namedCheck{
		{"data_corruption", alarmCheck(b, pb.AlarmType_CORRUPT)},
		{"serializable_read", readCheck(b, true)},
		{"linearizable_read", readCheck(b, false)},
		{"non_learner", learnerCheck(b)},
	}
}

// readCheck is a one-key range, local or linearizable, bounded only by the request's
// context, as etcd's.
func readCheck(b Backend, serializable bool) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := b.Range(ctx, &pb.RangeRequest{Key: []byte{0}, KeysOnly: true, Limit: 1, Serializable: serializable})
		return err
	}
}

// alarmCheck fails while alarm at is active: "alarm activated: CORRUPT".
func alarmCheck(b Backend, at pb.AlarmType) func(context.Context) error {
	return func(ctx context.Context) error {
		var alarms []*pb.AlarmMember
		if al, ok := b.(AlarmLister); ok {
			alarms = al.Alarms()
		} else {
			ar, err := b.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
			if err != nil {
				return err
			}
			alarms = ar.GetAlarms()
		}
		for _, a := range alarms {
			if a.GetAlarm() == at {
				return fmt.Errorf("alarm activated: %s", at)
			}
		}
		return nil
	}
}

// learnerCheck fails on a learner: "not supported for learner".
func learnerCheck(b Backend) func(context.Context) error {
	return func(context.Context) error {
		if lr, ok := b.(LearnerReporter); ok && lr.IsLearner() {
			return fmt.Errorf("not supported for learner")
		}
		return nil
	}
}

// registerProbes installs kind's root path and one path per check on mux.
func registerProbes(mux *http.ServeMux, kind string, checks []namedCheck, m probeMetrics, lg *zap.Logger) {
	root := "/" + kind
	mux.Handle(root, probeHandler(root, lg, func(r *http.Request) (bool, string) {
		excluded := map[string]bool{}
		for _, e := range r.URL.Query()["exclude"] {
			if e != "" {
				excluded[e] = true
			}
		}
		var run []namedCheck
		for _, c := range checks {
			if excluded[c.name] {
				delete(excluded, c.name)
				continue
			}
			run = append(run, c)
		}
		if len(excluded) > 0 {
			var missing []string
			for e := range excluded {
				missing = append(missing, fmt.Sprintf("%q", e))
			}
			slices.Sort(missing)
			lg.Warn("some health checks cannot be excluded", zap.String("missing-health-checks", strings.Join(missing, ",")))
		}
		return runChecks(r.Context(), kind, run, m)
	}))
	for _, c := range checks {
		sub := root + "/" + c.name
		mux.Handle(sub, probeHandler(sub, lg, func(r *http.Request) (bool, string) {
			return runChecks(r.Context(), kind, []namedCheck{c}, m)
		}))
	}
}

// runChecks runs every check and returns whether all passed and etcd's report lines.
func runChecks(ctx context.Context, kind string, checks []namedCheck, m probeMetrics) (bool, string) {
	ok := true
	var out bytes.Buffer
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, err)
			ok = false
			m.record(kind, c.name, healthStatusError)
		} else {
			fmt.Fprintf(&out, "[+]%s ok\n", c.name)
			m.record(kind, c.name, healthStatusSuccess)
		}
	}
	return ok, out.String()
}

// probeHandler answers as etcd's newHealthHandler.
func probeHandler(path string, lg *zap.Logger, run func(*http.Request) (bool, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			lg.Warn("Health request error", zap.String("path", path), zap.Int("status-code", http.StatusMethodNotAllowed))
			return
		}
		ok, reason := run(r)
		if !ok {
			http.Error(w, reason, http.StatusServiceUnavailable)
			lg.Error("Health check error", zap.String("path", path), zap.String("reason", reason), zap.Int("status-code", http.StatusServiceUnavailable))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprint(w, reason)
		}
		fmt.Fprint(w, "ok\n")
	})
}

// AccessController wraps the client port's HTTP handler as etcd's: every answer carries
// the CORS headers of etcd's default --cors "*", an OPTIONS request is answered 200 with
// them alone, and the gateway's old "/v3beta/" prefix is served as "/v3/".
func AccessController(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL != nil && strings.HasPrefix(r.URL.Path, "/v3beta/") {
			r.URL.Path = strings.Replace(r.URL.Path, "/v3beta/", "/v3/", 1)
		}
		w.Header().Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		w.Header().Add("Access-Control-Allow-Origin", "*")
		w.Header().Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.ServeHTTP(w, r)
	})
}
