package interop

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/siptest/replay"
	"github.com/sipua/sip/transport"
)

// RecordEnv names the environment variable that makes TestRecordTraces
// record the traces of testdata/traces/ again from the real peers: with
// SIPUA_RECORD=1 it starts Kamailio and the peers, records what our
// UserAgent exchanges with Kamailio over UDP, and rewrites the files.
// Without it, it checks that the committed traces parse, are in canonical
// form (reading and writing one gives back its bytes) and show the
// expected message flow.
//
//	SIPUA_RECORD=1 go test ./interop -run TestRecordTraces -v
const RecordEnv = "SIPUA_RECORD"

// traceDir is where the recorded traces live, from the interop directory.
const traceDir = "../testdata/traces"

// recording is one trace of testdata/traces and how to record it.
type recording struct {
	file  string
	title string
	// peer describes who is behind Kamailio, for side A's description
	// (empty: nobody, Kamailio answers itself).
	peer string
	// scenario tells a replay what the user agent under test must do.
	scenario string
	// flow is the expected Trace.Flow without retransmissions.
	flow []string
	// run drives the exchange; rec records our UserAgent's datagrams.
	run func(t *testing.T, k *Kamailio, rec *replay.Recorder) (peerVersion string)
}

var recordings = []recording{
	{
		file:  "kamailio-register.trace",
		title: "REGISTER with digest authentication against Kamailio, then unregister",
		peer:  "",
		scenario: "B (bob, password bob-secret) registers (REGISTER, 401, REGISTER with credentials, 200), then unregisters " +
			"(Expires 0, the nonce reused with nc=00000002: 200 at once).",
		flow: []string{
			"B->A REGISTER", "A->B 401", "B->A REGISTER", "A->B 200",
			"B->A REGISTER", "A->B 200",
		},
		run: recordRegister,
	},
	{
		file:  "sipua-calls-jssip.trace",
		title: "our UserAgent calls JsSIP through Kamailio (407, 100, 180, 200, ACK), and hangs up",
		peer:  "JsSIP 3.13.8 (dave) over WebSocket",
		scenario: "B (carol, password carol-secret) calls sip:dave@sipua.test: INVITE, Kamailio's 407 (acknowledged), INVITE with " +
			"credentials, 100, 180 and 200 from JsSIP, ACK; then B hangs up (BYE, 200).",
		flow: []string{
			"B->A INVITE", "A->B 407", "B->A ACK", "B->A INVITE", "A->B 100", "A->B 180", "A->B 200",
			"B->A ACK", "B->A BYE", "A->B 200",
		},
		run: func(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
			return recordUACall(t, k, rec, JsSIP, false)
		},
	},
	{
		file:  "sipua-calls-sipjs.trace",
		title: "our UserAgent calls SIP.js through Kamailio (407, 100, 180, 200, ACK); SIP.js hangs up",
		peer:  "SIP.js 0.21.2 (dave) over WebSocket",
		scenario: "B (carol, password carol-secret) calls sip:dave@sipua.test: INVITE, Kamailio's 407 (acknowledged), INVITE with " +
			"credentials, 100, 180 and 200 from SIP.js, ACK; then SIP.js hangs up (BYE from A, 200 from B).",
		flow: []string{
			"B->A INVITE", "A->B 407", "B->A ACK", "B->A INVITE", "A->B 100", "A->B 180", "A->B 200",
			"B->A ACK", "A->B BYE", "B->A 200",
		},
		run: func(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
			return recordUACall(t, k, rec, SIPJS, true)
		},
	},
	{
		file:  "sipjs-calls-sipua.trace",
		title: "SIP.js calls our registered UserAgent through Kamailio; SIP.js hangs up",
		peer:  "SIP.js 0.21.2 (dave) over WebSocket",
		scenario: "B (carol, password carol-secret) registers (401, 200); dave calls: B answers the INVITE with 180 " +
			"and 200, A acknowledges; A hangs up (BYE, 200); B unregisters (the nonce reused: 200 at once).",
		flow: []string{
			"B->A REGISTER", "A->B 401", "B->A REGISTER", "A->B 200",
			"A->B INVITE", "B->A 180", "B->A 200", "A->B ACK", "A->B BYE", "B->A 200",
			"B->A REGISTER", "A->B 200",
		},
		run: func(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
			return recordPeerCallsUA(t, k, rec, SIPJS, false)
		},
	},
	{
		file:  "jssip-calls-sipua.trace",
		title: "JsSIP calls our registered UserAgent through Kamailio; our UserAgent hangs up",
		peer:  "JsSIP 3.13.8 (dave) over WebSocket",
		scenario: "B (carol, password carol-secret) registers (401, 200); dave calls: B answers the INVITE with 180 " +
			"and 200, A acknowledges; B hangs up (BYE, 200); B unregisters (the nonce reused: 200 at once).",
		flow: []string{
			"B->A REGISTER", "A->B 401", "B->A REGISTER", "A->B 200",
			"A->B INVITE", "B->A 180", "B->A 200", "A->B ACK", "B->A BYE", "A->B 200",
			"B->A REGISTER", "A->B 200",
		},
		run: func(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
			return recordPeerCallsUA(t, k, rec, JsSIP, true)
		},
	},
	{
		file:  "sipp-calls-sipua.trace",
		title: "a sipp UAC calls our registered UserAgent through Kamailio; sipp hangs up",
		peer:  "sipp 3.6.1 (dave, interop/sipp/uac-auth.xml) over UDP",
		scenario: "B (eve, password eve-secret) registers (401, 200); dave calls: B answers the INVITE with 180 " +
			"and 200, A acknowledges; A hangs up (BYE, 200); B unregisters (the nonce reused: 200 at once).",
		flow: []string{
			"B->A REGISTER", "A->B 401", "B->A REGISTER", "A->B 200",
			"A->B INVITE", "B->A 180", "B->A 200", "A->B ACK", "A->B BYE", "B->A 200",
			"B->A REGISTER", "A->B 200",
		},
		run: recordSippCallsUA,
	},
	{
		file:  "sipua-calls-sipp.trace",
		title: "our UserAgent calls a sipp UAS through Kamailio (407, 100, 180, 200, ACK), and hangs up",
		peer:  "sipp 3.6.1 (eve, interop/sipp/uas.xml) over UDP",
		scenario: "B (dave, password dave-secret) calls sip:eve@sipua.test: INVITE, Kamailio's 407 (acknowledged), INVITE with " +
			"credentials, 100, 180 and 200 from sipp, ACK; then B hangs up (BYE, 200).",
		flow: []string{
			"B->A INVITE", "A->B 407", "B->A ACK", "B->A INVITE", "A->B 100", "A->B 180", "A->B 200",
			"B->A ACK", "B->A BYE", "A->B 200",
		},
		run: recordUACallsSipp,
	},
}

// TestRecordTraces records the traces of testdata/traces from the real
// peers when RecordEnv is 1, and otherwise checks the committed ones.
func TestRecordTraces(t *testing.T) {
	record := os.Getenv(RecordEnv) == "1"
	for _, r := range recordings {
		t.Run(strings.TrimSuffix(r.file, ".trace"), func(t *testing.T) {
			path := filepath.Join(traceDir, r.file)
			if !record {
				checkCommittedTrace(t, path, r.flow)
				return
			}
			k := StartKamailio(t)
			rec := &replay.Recorder{Remote: k.Target(transport.UDP).Addr}
			version := r.run(t, k, rec)
			tr := rec.Trace()
			require.True(t, sameFlow(r.flow, essentialFlow(tr)), "the recorded flow:\n%s\nwant:\n%s",
				tr.Ladder(), strings.Join(r.flow, "\n"))
			tr.Title = r.title
			tr.A.Name = "kamailio"
			tr.A.Description = kamailioVersion(t) + " (interop/kamailio/kamailio.cfg, domain " + Domain + ")"
			if r.peer != "" {
				tr.A.Description += "; behind it: " + r.peer
			}
			tr.B.Name = "sipua"
			tr.B.Description = "github.com/sipua/sip UserAgent over UDP (the user agent under test)"
			tr.Fields = []replay.Field{
				{Name: "Recorded", Value: time.Now().UTC().Format(time.DateOnly) + " by interop/record_test.go (" + RecordEnv + "=1)"},
				{Name: "Transport", Value: "UDP"},
				{Name: "Scenario", Value: r.scenario},
			}
			if version != "" {
				tr.Fields = append(tr.Fields, replay.Field{Name: "Peer", Value: version})
			}
			var buf bytes.Buffer
			require.NoError(t, replay.WriteTrace(&buf, tr))
			require.NoError(t, os.MkdirAll(traceDir, 0o755))
			require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
			t.Logf("wrote %s:\n%s", path, tr.Ladder())
			checkCommittedTrace(t, path, r.flow)
		})
	}
}

// checkCommittedTrace reads a trace file and checks that it is canonical
// and has the expected flow.
func checkCommittedTrace(t *testing.T, path string, flow []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "record it with %s=1 go test ./interop -run TestRecordTraces", RecordEnv)
	tr, err := replay.ReadTrace(bytes.NewReader(b))
	require.NoError(t, err)
	var again bytes.Buffer
	require.NoError(t, replay.WriteTrace(&again, tr))
	assert.Equal(t, string(b), again.String(), "the file is not in canonical form (line ends changed?)")
	assert.True(t, sameFlow(flow, essentialFlow(tr)), "the flow of %s:\n%s\nwant:\n%s",
		path, strings.Join(essentialFlow(tr), "\n"), strings.Join(flow, "\n"))
	assert.True(t, tr.A.Addr.IsValid() && tr.B.Addr.IsValid(), "both addresses recorded")
	for i, m := range tr.Messages {
		assert.True(t, bytes.Contains(m.Data, []byte("\r\n")), "message %d keeps its CRLFs", i)
	}
}

// sameFlow reports whether two flows have the same messages from each
// side in the same order. How the two sides' messages interleave may
// differ from run to run: our UserAgent sends the ACK for a 407 right
// after the new INVITE, and Kamailio's 100 to that INVITE may come first.
func sameFlow(want, got []string) bool {
	side := func(flow []string, prefix string) []string {
		var out []string
		for _, f := range flow {
			if strings.HasPrefix(f, prefix) {
				out = append(out, f)
			}
		}
		return out
	}
	return len(want) == len(got) &&
		slices.Equal(side(want, "A->B"), side(got, "A->B")) && slices.Equal(side(want, "B->A"), side(got, "B->A"))
}

// essentialFlow is the flow of a trace without the retransmissions (a
// datagram equal to an earlier one of the same side).
func essentialFlow(tr *replay.Trace) []string {
	var out []string
	flow := tr.Flow()
	for i, m := range tr.Messages {
		dup := false
		for _, o := range tr.Messages[:i] {
			dup = dup || o.From == m.From && bytes.Equal(o.Data, m.Data)
		}
		if !dup {
			out = append(out, flow[i])
		}
	}
	return out
}

var kamailioVersionRE = regexp.MustCompile(`version: kamailio (\S+)`)

// kamailioVersion returns "Kamailio 5.6.3" from kamailio -v.
func kamailioVersion(t *testing.T) string {
	out, err := exec.Command("kamailio", "-v").CombinedOutput()
	if m := kamailioVersionRE.FindSubmatch(out); err == nil && m != nil {
		return "Kamailio " + string(m[1])
	}
	return "Kamailio"
}

// recordingUA starts one of our UserAgents on UDP towards Kamailio with
// its sockets recorded by rec, with the fixed SDP of the peer tests.
func recordingUA(t *testing.T, k *Kamailio, rec *replay.Recorder, user string, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: Users[user],
		Transport: sip.TransportOptions{
			Server:       server(k, transport.UDP),
			ListenPacket: rec.ListenPacket(nil),
		},
		MediaFactory: func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
		Delegate:     d,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	return ua
}

func stopUA(t *testing.T, ua *sip.UserAgent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Stop(ctx))
}

// recordRegister: bob registers and unregisters.
func recordRegister(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ua := recordingUA(t, k, rec, "bob", sip.UserAgentDelegate{})
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}), k.Log())
	require.NoError(t, reg.Unregister(ctx, sip.UnregisterOptions{}))
	stopUA(t, ua)
	return ""
}

// recordUACall: carol calls dave, a Node peer, who answers; carol hangs up,
// or dave does when peerHangsUp.
func recordUACall(t *testing.T, k *Kamailio, rec *replay.Recorder, kind PeerKind, peerHangsUp bool) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peer := StartPeer(t, k, PeerConfig{Kind: kind, User: "dave"})
	registerPeers(t, peer)
	ua := recordingUA(t, k, rec, "carol", sip.UserAgentDelegate{})
	call, err := sip.NewInviter(ua, "sip:dave@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
	pc := peer.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
	peer.Do(t, "answer", "call", pc)
	require.NoError(t, <-errc, k.Log())
	peer.Expect(t, "ack", "call", pc)
	if peerHangsUp {
		peer.Do(t, "hangup", "call", pc)
		select {
		case <-call.Done():
		case <-ctx.Done():
			t.Fatal("the call did not end")
		}
		assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
	} else {
		require.NoError(t, call.Bye(ctx))
		peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")
	}
	stopUA(t, ua)
	noRouteSetViolations(t, k)
	return peerVersion(t, peer)
}

// recordPeerCallsUA: carol registers, dave (a Node peer) calls her, she
// answers; dave hangs up, or carol does when uaHangsUp; carol unregisters.
func recordPeerCallsUA(t *testing.T, k *Kamailio, rec *replay.Recorder, kind PeerKind, uaHangsUp bool) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peer := StartPeer(t, k, PeerConfig{Kind: kind, User: "dave"})
	registerPeers(t, peer)
	invs := make(chan *sip.Invitation, 1)
	ua := recordingUA(t, k, rec, "carol", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Progress(ctx, sip.ProgressOptions{}))
		assert.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
		invs <- inv
	}})
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}), k.Log())

	peer.Do(t, "call", "target", "sip:carol@"+Domain)
	pc := peer.Expect(t, "calling").Get("call")
	var inv *sip.Invitation
	select {
	case inv = <-invs:
	case <-ctx.Done():
		t.Fatalf("no INVITE reached our UserAgent\n%s", k.Log())
	}
	peer.Expect(t, "accepted", "call", pc)
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 5*time.Millisecond, "no ACK")
	if uaHangsUp {
		require.NoError(t, inv.Bye(ctx))
		peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")
	} else {
		peer.Do(t, "hangup", "call", pc)
		select {
		case <-inv.Done():
		case <-ctx.Done():
			t.Fatal("the call did not end")
		}
		assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	}
	require.NoError(t, reg.Unregister(ctx, sip.UnregisterOptions{}))
	stopUA(t, ua)
	noRouteSetViolations(t, k)
	return peerVersion(t, peer)
}

// peerVersion returns the library and version a Node peer reported.
func peerVersion(t *testing.T, p *Peer) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.events {
		if ev.Name == "ready" {
			return strings.TrimSpace(ev.Get("lib") + " " + ev.Get("version"))
		}
	}
	return ""
}

// recordSippCallsUA: eve registers, a sipp UAC (dave) calls her through
// Kamailio, she answers, sipp hangs up; eve unregisters.
func recordSippCallsUA(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	invs := make(chan *sip.Invitation, 1)
	ua := recordingUA(t, k, rec, "eve", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Progress(ctx, sip.ProgressOptions{}))
		assert.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
		invs <- inv
	}})
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}), k.Log())
	uac := StartSipp(t, SippConfig{
		Scenario: "uac-auth.xml",
		Remote:   k.Target(transport.UDP).Addr.String(),
		User:     "dave", Password: Users["dave"],
		Service: "eve",
		Keys:    map[string]string{"user": "dave", "domain": Domain},
		Timeout: 15 * time.Second,
	})
	require.NoError(t, uac.Wait(ctx), "sipp UAC:\n%s\n%s", uac.Messages(), k.Log())
	inv := <-invs
	select {
	case <-inv.Done():
	case <-ctx.Done():
		t.Fatal("the call did not end")
	}
	assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	require.NoError(t, reg.Unregister(ctx, sip.UnregisterOptions{}))
	stopUA(t, ua)
	noRouteSetViolations(t, k)
	return sippVersion()
}

// recordUACallsSipp: dave calls a sipp UAS registered as eve, and hangs
// up.
func recordUACallsSipp(t *testing.T, k *Kamailio, rec *replay.Recorder) string {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	uas := StartSipp(t, SippConfig{Scenario: "uas.xml", Timeout: 20 * time.Second})
	sippRegister(t, k, "eve", uas.Port)
	ua := recordingUA(t, k, rec, "dave", sip.UserAgentDelegate{})
	call, err := sip.NewInviter(ua, "sip:eve@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), k.Log())
	require.NoError(t, call.Bye(ctx))
	require.NoError(t, uas.Wait(ctx), "sipp UAS:\n%s", uas.Messages())
	stopUA(t, ua)
	noRouteSetViolations(t, k)
	return sippVersion()
}

var sippVersionRE = regexp.MustCompile(`SIPp v?([0-9][^\s,-]*)`)

// sippVersion returns "sipp 3.6.1" from sipp -v.
func sippVersion() string {
	out, _ := exec.Command("sipp", "-v").CombinedOutput()
	if m := sippVersionRE.FindSubmatch(out); m != nil {
		return "sipp " + string(m[1])
	}
	return "sipp"
}
