// Package prom exports a UserAgent's metrics to Prometheus with
// client_golang: calls by direction, outcome and status code, call setup
// time and duration, active calls, transactions and retransmissions by
// method, the server connection (connections, disconnections,
// reconnects), registration state, and media quality (packets received
// and lost, jitter, round-trip time) where the media handler reports it.
//
// It plugs into the root package through sip.Observer: a program that does
// not import this package links neither it nor client_golang, and a
// UserAgent without an Observer pays one nil check per event.
//
//	m := prom.New(prom.Options{})
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m)
//	ua, _ := sip.NewUserAgent(sip.UserAgentOptions{URI: "sip:bot@example.com", Observer: m.Observer()})
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// One Metrics may serve several UserAgents; their counts add up.
//
// Label values come from a bounded set: methods other than the standard
// ones are counted as "other", so that a peer cannot create series at will.
package prom

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
)

// Options configures Metrics. The zero value works.
type Options struct {
	// Namespace prefixes every metric name. Default "sipua".
	Namespace string
	// ConstLabels are added to every metric (e.g. the process's name).
	ConstLabels prometheus.Labels
	// SetupBuckets are the buckets of the call setup time histogram, in
	// seconds. Default: 10 ms to 30 s.
	SetupBuckets []float64
	// DurationBuckets are the buckets of the call duration histogram, in
	// seconds. Default: 1 s to 2 h.
	DurationBuckets []float64
}

// Metrics holds the collectors. It is a prometheus.Collector: register it
// with a prometheus.Registerer. All methods are safe for concurrent use.
type Metrics struct {
	callsStarted   *prometheus.CounterVec
	callsAnswered  *prometheus.CounterVec
	callsEnded     *prometheus.CounterVec
	callsActive    *prometheus.GaugeVec
	setup          *prometheus.HistogramVec
	duration       *prometheus.HistogramVec
	transactions   *prometheus.CounterVec
	retransmits    *prometheus.CounterVec
	connects       prometheus.Counter
	disconnects    prometheus.Counter
	reconnects     prometheus.Counter
	connected      prometheus.Gauge
	registrations  *prometheus.CounterVec
	registered     *prometheus.GaugeVec
	mediaReceived  prometheus.Counter
	mediaLost      prometheus.Counter
	mediaJitter    prometheus.Histogram
	mediaRTT       prometheus.Histogram
	mediaLossRatio prometheus.Histogram

	obs sip.Observer
}

// MediaQuality is what a call's media handler measured, for
// Metrics.ObserveMedia.
type MediaQuality struct {
	// PacketsReceived and PacketsLost count the RTP received and lost
	// (RFC 3550 A.3) during the call.
	PacketsReceived uint64
	PacketsLost     int64
	// Jitter is the interarrival jitter (RFC 3550 A.8) at the end.
	Jitter time.Duration
	// RoundTripTime comes from RTCP; zero when unknown.
	RoundTripTime time.Duration
}

// New makes the collectors.
func New(opts Options) *Metrics {
	ns := opts.Namespace
	if ns == "" {
		ns = "sipua"
	}
	setupB := opts.SetupBuckets
	if setupB == nil {
		setupB = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	}
	durB := opts.DurationBuckets
	if durB == nil {
		durB = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200}
	}
	cl := opts.ConstLabels
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help, ConstLabels: cl}, labels)
	}
	m := &Metrics{
		callsStarted:  counter("calls_started_total", "Calls started: INVITEs sent (direction outgoing) or received (incoming).", "direction"),
		callsAnswered: counter("calls_answered_total", "Calls that reached the established state.", "direction"),
		callsEnded: counter("calls_ended_total",
			"Calls ended, by outcome (answered, rejected, canceled, timeout, failed) and status code (the final response: 200 for answered calls, the rejection's code, empty when none came).",
			"direction", "outcome", "code"),
		callsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "calls_active", Help: "Calls started and not yet ended.", ConstLabels: cl}, []string{"direction"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "call_setup_seconds",
			Help: "Time from the INVITE to the established call.", ConstLabels: cl, Buckets: setupB}, []string{"direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "call_duration_seconds",
			Help: "Time answered calls were established.", ConstLabels: cl, Buckets: durB}, []string{"direction"}),
		transactions: counter("transactions_total", "SIP transactions ended, by method and kind (client, server).", "method", "kind"),
		retransmits:  counter("retransmissions_total", "Requests and responses sent again by a transaction timer, by method and kind.", "method", "kind"),
		connects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "transport_connections_total",
			Help: "Connections to the server established (the first and reconnections).", ConstLabels: cl}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "transport_disconnections_total",
			Help: "Connections to the server lost or closed.", ConstLabels: cl}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "transport_reconnects_total",
			Help: "Connections to the server established after an earlier one was lost.", ConstLabels: cl}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "transport_connected",
			Help: "Server connections up now.", ConstLabels: cl}),
		registrations: counter("registration_changes_total", "Registerer state changes, by new state.", "state"),
		registered: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "registered",
			Help: "1 while the address of record is registered, 0 otherwise.", ConstLabels: cl}, []string{"aor"}),
		mediaReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "media_packets_received_total",
			Help: "RTP packets received by calls whose handler reports it.", ConstLabels: cl}),
		mediaLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "media_packets_lost_total",
			Help: "RTP packets lost (RFC 3550 A.3) on calls whose handler reports it.", ConstLabels: cl}),
		mediaJitter: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "media_jitter_seconds",
			Help: "Interarrival jitter at a call's end.", ConstLabels: cl, Buckets: []float64{.001, .0025, .005, .01, .02, .04, .08, .16}}),
		mediaRTT: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "media_round_trip_seconds",
			Help: "RTCP round-trip time at a call's end.", ConstLabels: cl, Buckets: []float64{.005, .01, .025, .05, .1, .2, .4, .8}}),
		mediaLossRatio: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "media_loss_ratio",
			Help: "Fraction of a call's expected RTP packets that were lost.", ConstLabels: cl, Buckets: []float64{0, .001, .005, .01, .02, .05, .1, .2, .5}}),
	}
	m.obs = sip.Observer{
		CallStarted:      m.callStarted,
		CallAnswered:     m.callAnswered,
		CallEnded:        m.callEnded,
		TransactionEnded: func(e sip.TransactionEvent) { m.transactions.WithLabelValues(method(e.Method), kind(e.Client)).Inc() },
		Retransmission:   func(e sip.TransactionEvent) { m.retransmits.WithLabelValues(method(e.Method), kind(e.Client)).Inc() },
		Connection:       m.connection,
		Registration:     m.registration,
	}
	return m
}

// Observer returns the sip.Observer to set in sip.UserAgentOptions.
func (m *Metrics) Observer() *sip.Observer { return &m.obs }

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.callsStarted, m.callsAnswered, m.callsEnded, m.callsActive, m.setup, m.duration,
		m.transactions, m.retransmits, m.connects, m.disconnects, m.reconnects, m.connected, m.registrations,
		m.registered, m.mediaReceived, m.mediaLost, m.mediaJitter, m.mediaRTT, m.mediaLossRatio}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func direction(incoming bool) string {
	if incoming {
		return "incoming"
	}
	return "outgoing"
}

func kind(client bool) string {
	if client {
		return "client"
	}
	return "server"
}

// method bounds the method label to the standard methods.
func method(m string) string {
	switch m {
	case "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
		"PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE":
		return m
	}
	return "other"
}

func (m *Metrics) callStarted(e sip.CallEvent) {
	d := direction(e.Incoming)
	m.callsStarted.WithLabelValues(d).Inc()
	m.callsActive.WithLabelValues(d).Inc()
}

func (m *Metrics) callAnswered(e sip.CallEvent) {
	d := direction(e.Incoming)
	m.callsAnswered.WithLabelValues(d).Inc()
	m.setup.WithLabelValues(d).Observe(e.Setup.Seconds())
}

// Outcome returns the outcome and code labels Metrics gives a call that
// ended for reason r; answered tells whether it was established.
func Outcome(r sip.EndReason, answered bool) (outcome, code string) {
	if answered {
		return "answered", "200"
	}
	if r.StatusCode != 0 {
		code = strconv.Itoa(r.StatusCode)
	}
	switch r.Cause {
	case sip.EndRejected:
		return "rejected", code
	case sip.EndCanceled, sip.EndRemoteCancel, sip.EndReplaced, sip.EndLocalBye, sip.EndRemoteBye:
		return "canceled", code
	case sip.EndTimeout, sip.EndNoAck, sip.EndNoPrack:
		return "timeout", code
	}
	return "failed", code
}

func (m *Metrics) callEnded(e sip.CallEvent) {
	d := direction(e.Incoming)
	answered := e.Setup > 0 || e.Duration > 0
	outcome, code := Outcome(e.Reason, answered)
	m.callsEnded.WithLabelValues(d, outcome, code).Inc()
	m.callsActive.WithLabelValues(d).Dec()
	if answered {
		m.duration.WithLabelValues(d).Observe(e.Duration.Seconds())
	}
	if e.Session != nil {
		if h, ok := e.Session.MediaHandler().(*rtp.Handler); ok && h != nil {
			st := h.Stats()
			if st.PacketsReceived > 0 || st.PacketsLost > 0 {
				m.ObserveMedia(MediaQuality{PacketsReceived: st.PacketsReceived, PacketsLost: st.PacketsLost,
					Jitter: st.Jitter, RoundTripTime: st.RoundTripTime})
			}
		}
	}
}

// ObserveMedia records one call's media quality. Calls whose handler is a
// *rtp.Handler are recorded when they end; an application with another
// handler (e.g. media/webrtc, from its Stats) calls this itself.
func (m *Metrics) ObserveMedia(q MediaQuality) {
	m.mediaReceived.Add(float64(q.PacketsReceived))
	lost := max(q.PacketsLost, 0)
	m.mediaLost.Add(float64(lost))
	if expected := float64(q.PacketsReceived) + float64(lost); expected > 0 {
		m.mediaLossRatio.Observe(float64(lost) / expected)
	}
	m.mediaJitter.Observe(q.Jitter.Seconds())
	if q.RoundTripTime > 0 {
		m.mediaRTT.Observe(q.RoundTripTime.Seconds())
	}
}

func (m *Metrics) connection(e sip.ConnectionEvent) {
	if e.Up {
		m.connects.Inc()
		m.connected.Inc()
		if e.Reconnect {
			m.reconnects.Inc()
		}
		return
	}
	m.disconnects.Inc()
	m.connected.Dec()
}

func (m *Metrics) registration(e sip.RegistrationEvent) {
	m.registrations.WithLabelValues(strings.ToLower(e.State.String())).Inc()
	v := 0.0
	if e.State == sip.Registered {
		v = 1
	}
	m.registered.WithLabelValues(e.AOR).Set(v)
}
