package sip_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/siptest/replay"
)

// These tests replay the traces of testdata/traces, recorded from real
// peers by interop/record_test.go: the harness plays Kamailio's side
// (with, behind it, SIP.js, JsSIP or sipp) on the in-memory network,
// inside a synctest bubble, and checks every message our UserAgent sends
// against the one it sent when the trace was recorded.

// replayServer is where the harness plays side A in these tests.
var replayServer = siptest.Addr("192.0.2.10:5060")

// tracePasswords are the interop users' passwords, to verify the digest
// responses our UserAgent computes for the recorded nonces.
var tracePasswords = map[string]string{
	"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret",
	"dave": "dave-secret", "eve": "eve-secret",
}

// recordedSDP is the SDP the traces were recorded with: one fixed audio
// SDP offered and answered (sip.TestMedia), no media.
const recordedSDP = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// loadTrace reads a trace of testdata/traces.
func loadTrace(t *testing.T, name string) *replay.Trace {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "traces", name))
	require.NoError(t, err)
	tr, err := replay.ReadTrace(bytes.NewReader(b))
	require.NoError(t, err)
	return tr
}

// traceUA starts user@sipua.test, the user agent under test, on n with
// the harness at replayServer as its server.
func traceUA(t *testing.T, n *siptest.Network, user string, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	return sip.StartTestUA(t, sip.UserAgentOptions{
		URI:                   "sip:" + user + "@sipua.test",
		AuthorizationPassword: tracePasswords[user],
		Transport: sip.TransportOptions{
			Server:       "sip:" + replayServer.String(),
			ListenPacket: n.PacketListener("sipua"),
		},
		MediaFactory: func(media.SessionInfo) (media.Handler, error) { return &sip.TestMedia{SDP: recordedSDP}, nil },
		Delegate:     d,
	})
}

// playTrace plays side A of tr from replayServer on n while drive makes
// the user agent act, and fails the test with the harness's diff on a
// mismatch.
func playTrace(t *testing.T, n *siptest.Network, tr *replay.Trace, drive func(ctx context.Context) error) *replay.Result {
	t.Helper()
	conn, err := n.ListenPacket("kamailio", replayServer)
	require.NoError(t, err)
	defer conn.Close()
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() { errc <- drive(ctx) }()
	res, err := replay.Play(ctx, conn, tr, replay.Options{
		Passwords: tracePasswords,
		Linger:    time.Second,
		Logf:      t.Logf,
	})
	require.NoError(t, err, "this run so far:\n%s", res.Trace.Ladder())
	require.NoError(t, <-errc)
	t.Logf("replayed %s:\n%s", tr.Title, res.Trace.Ladder())
	return res
}

// TestReplayKamailioRegister: our UserAgent registers and unregisters
// against Kamailio's recorded 401s and 200s; the harness checks each
// REGISTER, and the digest responses against bob's password.
func TestReplayKamailioRegister(t *testing.T) {
	tr := loadTrace(t, "kamailio-register.trace")
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		ua := traceUA(t, n, "bob", sip.UserAgentDelegate{})
		reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
		require.NoError(t, err)
		res := playTrace(t, n, tr, func(ctx context.Context) error {
			if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
				return err
			}
			return reg.Unregister(ctx, sip.UnregisterOptions{})
		})
		assert.Equal(t, sip.Unregistered, reg.State())
		assert.Zero(t, res.Retransmissions)
		assert.Contains(t, res.Mapping, tr.B.Addr.String(), "the recorded address maps to this run's")

		// Kamailio's recorded 401 reached our UserAgent with this run's
		// Call-ID, tag, branch, CSeq and address in it.
		req, err := message.ParseRequest(res.Trace.Messages[0].Data)
		require.NoError(t, err)
		resp, err := message.ParseResponse(res.Trace.Messages[1].Data)
		require.NoError(t, err)
		assert.Equal(t, req.Header.CallID(), resp.Header.CallID())
		assert.Equal(t, req.Header.FromTag(), resp.Header.FromTag())
		assert.Equal(t, req.Header.Get("CSeq"), resp.Header.Get("CSeq"))
		reqVia, err := req.Header.TopVia()
		require.NoError(t, err)
		respVia, err := resp.Header.TopVia()
		require.NoError(t, err)
		assert.Equal(t, reqVia.Branch(), respVia.Branch())
		assert.Equal(t, res.Trace.B.Addr.Addr().String(), respVia.Received())
		rport, _ := respVia.RPort()
		assert.Equal(t, int(res.Trace.B.Addr.Port()), rport)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "nonce=", "Kamailio's nonce, as recorded")
	})
}

// TestReplayDetectsChange: when our UserAgent no longer sends what the
// trace recorded (here the trace is altered instead: a REGISTER asking for
// 3600 s), the replay fails at that message with a diff.
func TestReplayDetectsChange(t *testing.T) {
	tr := loadTrace(t, "kamailio-register.trace")
	tr.Messages[0].Data = bytes.Replace(tr.Messages[0].Data, []byte("Expires: 600"), []byte("Expires: 3600"), 1)
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		conn, err := n.ListenPacket("kamailio", replayServer)
		require.NoError(t, err)
		defer conn.Close()
		ua := traceUA(t, n, "bob", sip.UserAgentDelegate{})
		reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = reg.Register(ctx, sip.RegisterOptions{}) }()
		_, err = replay.Play(ctx, conn, tr, replay.Options{})
		var me *replay.MismatchError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, 0, me.Index)
		assert.Equal(t, []string{`Expires: want "3600", got "600"`}, me.Problems)
		assert.Contains(t, err.Error(), "- Expires: 3600\n+ Expires: 600")
		t.Log(err)
		cancel()
	})
}

// TestReplayUserAgentCalls: our UserAgent calls through the recorded
// Kamailio, which challenges the INVITE with 407, relays 100, 180 and 200
// from JsSIP, SIP.js or sipp; then one side hangs up.
func TestReplayUserAgentCalls(t *testing.T) {
	for _, c := range []struct {
		trace, user string
		remoteBye   bool
		swap        bool // swap our ACK to the 407 and Kamailio's 100
	}{
		{"sipua-calls-jssip.trace", "carol", false, false},
		{"sipua-calls-sipjs.trace", "carol", true, false},
		{"sipua-calls-sipp.trace", "dave", false, false},
	} {
		name := c.trace
		if c.swap {
			name += "/interleaved"
		}
		t.Run(name, func(t *testing.T) {
			tr := loadTrace(t, c.trace)
			if c.swap {
				// The ACK for the 407 and the 100 for the new INVITE
				// cross on the wire; either order must replay.
				flow := tr.Flow()
				ack, trying := slices.Index(flow, "B->A ACK"), slices.Index(flow, "A->B 100")
				require.Equal(t, 1, max(ack, trying)-min(ack, trying), "%q", flow)
				tr.Messages[ack], tr.Messages[trying] = tr.Messages[trying], tr.Messages[ack]
			}
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(1)
				defer n.Close()
				ua := traceUA(t, n, c.user, sip.UserAgentDelegate{})
				target := "sip:dave@sipua.test"
				if c.user == "dave" {
					target = "sip:eve@sipua.test"
				}
				call, err := sip.NewInviter(ua, target, sip.InviterOptions{})
				require.NoError(t, err)
				playTrace(t, n, tr, func(ctx context.Context) error {
					if err := call.Invite(ctx, sip.InviteOptions{}); err != nil {
						return err
					}
					if c.remoteBye {
						<-call.Done()
						return nil
					}
					return call.Bye(ctx)
				})
				want := sip.EndLocalBye
				if c.remoteBye {
					want = sip.EndRemoteBye
				}
				assert.Equal(t, want, call.EndReason().Cause)
			})
		})
	}
}

// TestReplayUserAgentIsCalled: our UserAgent registers, is called by
// SIP.js, JsSIP or sipp through the recorded Kamailio, rings and answers;
// one side hangs up, then it unregisters.
func TestReplayUserAgentIsCalled(t *testing.T) {
	for _, c := range []struct {
		trace, user string
		remoteBye   bool
	}{
		{"sipjs-calls-sipua.trace", "carol", true},
		{"jssip-calls-sipua.trace", "carol", false},
		{"sipp-calls-sipua.trace", "eve", true},
	} {
		t.Run(c.trace, func(t *testing.T) {
			tr := loadTrace(t, c.trace)
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(1)
				defer n.Close()
				invs := make(chan *sip.Invitation, 1)
				ua := traceUA(t, n, c.user, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
					assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
					assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
					invs <- inv
				}})
				reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
				require.NoError(t, err)
				var inv *sip.Invitation
				playTrace(t, n, tr, func(ctx context.Context) error {
					if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
						return err
					}
					inv = <-invs
					if !c.remoteBye {
						for inv.State() != sip.SessionEstablished { // until the ACK
							time.Sleep(time.Millisecond)
						}
						if err := inv.Bye(ctx); err != nil {
							return err
						}
					}
					<-inv.Done()
					return reg.Unregister(ctx, sip.UnregisterOptions{})
				})
				want := sip.EndLocalBye
				if c.remoteBye {
					want = sip.EndRemoteBye
				}
				assert.Equal(t, want, inv.EndReason().Cause)
			})
		})
	}
}
