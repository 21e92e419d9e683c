package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/transport"
)

// udpUser starts one of our UserAgents registered with Kamailio over UDP.
func udpUser(t *testing.T, k *Kamailio, user string, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: Users[user],
		Transport:             sip.TransportOptions{Server: server(k, transport.UDP)},
		MediaFactory:          func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
		Delegate:              d,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	return ua
}

// TestSippCallsUserAgent: a sipp UAC (dave) calls our UserAgent (eve)
// through Kamailio, answering Kamailio's 407; we answer, sipp hangs up.
func TestSippCallsUserAgent(t *testing.T) {
	k := StartKamailio(t)
	invs := make(chan *sip.Invitation, 1)
	udpUser(t, k, "eve", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}})
	uac := StartSipp(t, SippConfig{
		Scenario: "uac-auth.xml",
		Remote:   k.Target(transport.UDP).Addr.String(),
		User:     "dave", Password: Users["dave"],
		Service: "eve",
		Keys:    map[string]string{"user": "dave", "domain": Domain},
		Timeout: 15 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, uac.Wait(ctx), "sipp UAC:\n%s\n%s", uac.Messages(), k.Log())
	inv := <-invs
	select {
	case <-inv.Done():
	case <-ctx.Done():
		t.Fatal("the call did not end")
	}
	assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	assert.Contains(t, uac.Messages(), "SIP/2.0 407 Proxy Authentication Required")
	noRouteSetViolations(t, k)
}

// TestUserAgentCallsSipp: our UserAgent (dave) calls a sipp UAS (eve)
// through Kamailio, answers the 407 itself, and hangs up.
func TestUserAgentCallsSipp(t *testing.T) {
	k := StartKamailio(t)
	uas := StartSipp(t, SippConfig{Scenario: "uas.xml", Timeout: 20 * time.Second})
	sippRegister(t, k, "eve", uas.Port)
	ua := udpUser(t, k, "dave", sip.UserAgentDelegate{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := sip.NewInviter(ua, "sip:eve@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), k.Log())
	require.NoError(t, call.Bye(ctx))
	require.NoError(t, uas.Wait(ctx), "sipp UAS:\n%s", uas.Messages())
	msgs := uas.Messages()
	assert.Contains(t, msgs, "CSeq: 2 INVITE", "the INVITE sipp got is the one that answered Kamailio's 407")
	assert.True(t, strings.Contains(msgs, "BYE sip:"), "sipp got our BYE")
	noRouteSetViolations(t, k)
}

// TestSippOptionsToUserAgent: sipp pings our UserAgent with OPTIONS and
// gets 200.
func TestSippOptionsToUserAgent(t *testing.T) {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:       "sip:frank@127.0.0.1",
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	c := ua.ContactURI()
	p := StartSipp(t, SippConfig{Scenario: "options.xml", Remote: c.HostPort(), Service: "frank", Timeout: 10 * time.Second})
	require.NoError(t, p.Wait(ctx), "sipp:\n%s", p.Messages())
	assert.Contains(t, p.Messages(), "SIP/2.0 200 OK")
}

// TestUserAgentCallsUserAgent: two of our UserAgents call each other
// through Kamailio over UDP (407 on the INVITE, Record-Route followed).
func TestUserAgentCallsUserAgent(t *testing.T) {
	k := StartKamailio(t)
	invs := make(chan *sip.Invitation, 1)
	udpUser(t, k, "bob", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}})
	alice := udpUser(t, k, "alice", sip.UserAgentDelegate{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := sip.NewInviter(alice, "sip:bob@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), k.Log())
	inv := <-invs
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, inv.Bye(ctx), "the callee hangs up, through the route set")
	<-call.Done()
	assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
	noRouteSetViolations(t, k)
}

// TestRegistrationRefreshWithKamailio: with a short lifetime the
// registration is refreshed before it expires, and stays reachable.
func TestRegistrationRefreshWithKamailio(t *testing.T) {
	k := StartKamailio(t)
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: "sip:dave@" + Domain, AuthorizationPassword: Users["dave"],
		Transport: sip.TransportOptions{Server: server(k, transport.TCP)},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: 4})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	// Lifetime 4 s: refreshed 2 s before it ends. Count the REGISTERs
	// Kamailio logged for dave (two per round: 401, then credentials).
	time.Sleep(5 * time.Second)
	n := strings.Count(k.Log(), "REGISTER sip:"+Domain+" from") // every REGISTER is logged
	assert.GreaterOrEqual(t, n, 4, "a refresh happened:\n%s", k.Log())
	assert.Equal(t, sip.Registered, reg.State())
	alice := startUser(t, k, "alice", Users["alice"], transport.UDP, sip.UserAgentDelegate{})
	m, _ := sip.NewMessager(alice, "sip:dave@"+Domain, []byte("still there?"), "text/plain", sip.RequestOptions{})
	// dave has no OnMessage: 405 from dave proves the binding is alive.
	err = m.Message(ctx)
	var re *sip.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 405, re.StatusCode)
}

// TestSippReinviteAndInfo: a sipp UAC calls our UserAgent, puts the call
// on hold and back with re-INVITEs, sends a DTMF digit by INFO, and hangs
// up.
func TestSippReinviteAndInfo(t *testing.T) {
	digits := make(chan rune, 1)
	invs := make(chan *sip.Invitation, 1)
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:frank@127.0.0.1",
		Transport:    sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		MediaFactory: func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			inv.SetDelegate(sip.SessionDelegate{OnDTMF: func(tone rune, _ time.Duration) { digits <- tone }})
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	p := StartSipp(t, SippConfig{Scenario: "uac-reinvite-info.xml", Remote: ua.ContactURI().HostPort(), Service: "frank", Timeout: 15 * time.Second})
	require.NoError(t, p.Wait(ctx), "sipp:\n%s", p.Messages())
	inv := <-invs
	assert.Equal(t, '7', <-digits)
	<-inv.Done()
	assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	assert.GreaterOrEqual(t, strings.Count(p.Messages(), "CSeq: 2 INVITE"), 2, "the re-INVITE was sent and answered")
}
