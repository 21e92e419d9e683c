package prom_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/metrics/prom"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startUA(t *testing.T, user string, obs *sip.Observer, onInvite func(*sip.Invitation)) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:" + user + "@127.0.0.1",
		Transport:    sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		MediaFactory: sip.NoMedia,
		Observer:     obs,
		Delegate:     sip.UserAgentDelegate{OnInvite: onInvite},
		// Short timers: the transactions end (Timers K and M) quickly.
		Timers: sip.Timers{T1: 20 * time.Millisecond, T2: 80 * time.Millisecond, T4: 50 * time.Millisecond},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, ua.Stop(ctx))
	})
	return ua
}

// TestMetricsCalls: a caller and a callee share one Metrics; one call is
// answered and hung up, one is rejected 486. The counters, the gauge of
// active calls, the setup histogram and the transactions show both.
func TestMetricsCalls(t *testing.T) {
	m := prom.New(prom.Options{})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))

	n := 0
	bob := startUA(t, "bob", m.Observer(), func(inv *sip.Invitation) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n++
		if n == 2 {
			assert.NoError(t, inv.Reject(ctx, 486, ""))
			return
		}
		time.Sleep(30 * time.Millisecond)
		assert.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
	})
	alice := startUA(t, "alice", m.Observer(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	call, err := sip.NewInviter(alice, bob.ContactURI().String(), sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	require.Eventually(t, func() bool { return call.State() == sip.SessionEstablished }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return value(t, reg, "sipua_calls_active", map[string]string{"direction": "incoming"}) == 1
	}, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1.0, value(t, reg, "sipua_calls_active", map[string]string{"direction": "outgoing"}))
	assert.Equal(t, 1.0, value(t, reg, "sipua_calls_answered_total", map[string]string{"direction": "outgoing"}))
	assert.Equal(t, 1.0, value(t, reg, "sipua_call_setup_seconds_count", map[string]string{"direction": "outgoing"}))
	assert.GreaterOrEqual(t, value(t, reg, "sipua_call_setup_seconds_sum", map[string]string{"direction": "outgoing"}), 0.03)
	require.NoError(t, call.Bye(ctx))

	call2, err := sip.NewInviter(alice, bob.ContactURI().String(), sip.InviterOptions{})
	require.NoError(t, err)
	err = call2.Invite(ctx, sip.InviteOptions{})
	if err == nil {
		<-call2.Done()
	} else {
		var re *sip.ResponseError
		require.True(t, errors.As(err, &re), "%v", err)
	}
	require.Eventually(t, func() bool {
		return value(t, reg, "sipua_calls_ended_total", map[string]string{"direction": "incoming", "outcome": "rejected", "code": "486"}) == 1 &&
			value(t, reg, "sipua_calls_ended_total", map[string]string{"direction": "outgoing", "outcome": "rejected", "code": "486"}) == 1 &&
			value(t, reg, "sipua_calls_ended_total", map[string]string{"direction": "outgoing", "outcome": "answered", "code": "200"}) == 1 &&
			value(t, reg, "sipua_calls_ended_total", map[string]string{"direction": "incoming", "outcome": "answered", "code": "200"}) == 1
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 0.0, value(t, reg, "sipua_calls_active", map[string]string{"direction": "outgoing"}))
	assert.Equal(t, 0.0, value(t, reg, "sipua_calls_active", map[string]string{"direction": "incoming"}))
	assert.Equal(t, 2.0, value(t, reg, "sipua_calls_started_total", map[string]string{"direction": "outgoing"}))
	assert.Equal(t, 1.0, value(t, reg, "sipua_call_duration_seconds_count", map[string]string{"direction": "outgoing"}))
	require.Eventually(t, func() bool {
		return value(t, reg, "sipua_transactions_total", map[string]string{"method": "BYE", "kind": "client"}) == 1 &&
			value(t, reg, "sipua_transactions_total", map[string]string{"method": "BYE", "kind": "server"}) == 1 &&
			value(t, reg, "sipua_transactions_total", map[string]string{"method": "INVITE", "kind": "server"}) == 2 &&
			// The rejected INVITE's client transaction waits for Timer D
			// (32 s on UDP); the answered one ends after Timer M.
			value(t, reg, "sipua_transactions_total", map[string]string{"method": "INVITE", "kind": "client"}) == 1
	}, 5*time.Second, 10*time.Millisecond)
	// bob waited 30 ms with T1 = 20 ms: alice's INVITE was sent again.
	assert.Positive(t, value(t, reg, "sipua_retransmissions_total", map[string]string{"method": "INVITE", "kind": "client"}))
}

// TestMetricsMediaAndOutcome covers ObserveMedia and the outcome labels.
func TestMetricsMediaAndOutcome(t *testing.T) {
	m := prom.New(prom.Options{Namespace: "x"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	m.ObserveMedia(prom.MediaQuality{PacketsReceived: 990, PacketsLost: 10, Jitter: 3 * time.Millisecond, RoundTripTime: 20 * time.Millisecond})
	assert.Equal(t, 990.0, value(t, reg, "x_media_packets_received_total", nil))
	assert.Equal(t, 10.0, value(t, reg, "x_media_packets_lost_total", nil))
	assert.InDelta(t, 0.01, value(t, reg, "x_media_loss_ratio_sum", nil), 1e-9)
	assert.Equal(t, 1.0, value(t, reg, "x_media_round_trip_seconds_count", nil))

	for _, c := range []struct {
		r        sip.EndReason
		answered bool
		outcome  string
		code     string
	}{
		{sip.EndReason{Cause: sip.EndRemoteBye}, true, "answered", "200"},
		{sip.EndReason{Cause: sip.EndRejected, StatusCode: 603}, false, "rejected", "603"},
		{sip.EndReason{Cause: sip.EndCanceled}, false, "canceled", ""},
		{sip.EndReason{Cause: sip.EndTimeout}, false, "timeout", ""},
		{sip.EndReason{Cause: sip.EndTransport}, false, "failed", ""},
	} {
		o, code := prom.Outcome(c.r, c.answered)
		assert.Equal(t, c.outcome, o, "%v", c.r)
		assert.Equal(t, c.code, code, "%v", c.r)
	}
}

// TestMetricsNotLinkedWithoutImport: the root package and the examples
// that do not import metrics/prom do not depend on client_golang.
func TestMetricsNotLinkedWithoutImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/sipua/sip", "github.com/sipua/sip/examples/quickstart").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.NotContains(t, string(out), "prometheus")
	assert.Contains(t, string(out), "github.com/sipua/sip/transport")
}

// value returns the value of the series name with exactly the given
// labels (name may end in _count or _sum for a histogram); -1 when absent.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	base, part := name, ""
	for _, suffix := range []string{"_count", "_sum"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			base, part = b, suffix
		}
	}
	for _, mf := range mfs {
		if mf.GetName() != name && mf.GetName() != base {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			if len(mt.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range mt.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil && part == "_count":
				return float64(mt.Histogram.GetSampleCount())
			case mt.Histogram != nil && part == "_sum":
				return mt.Histogram.GetSampleSum()
			}
		}
	}
	return -1
}
