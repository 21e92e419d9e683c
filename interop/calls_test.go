package interop

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// portStr formats a port number.
func portStr(p uint16) string { return strconv.Itoa(int(p)) }

// registerPeers registers each peer and waits for its "registered" event.
func registerPeers(t *testing.T, peers ...*Peer) {
	t.Helper()
	for _, p := range peers {
		p.Do(t, "register")
	}
	for _, p := range peers {
		p.Expect(t, "registered")
	}
}

// noRouteSetViolations fails the test when Kamailio's strict route-set
// check fired: some peer sent an in-dialog request without the Route set.
func noRouteSetViolations(t *testing.T, k *Kamailio) {
	t.Helper()
	if v := k.RouteSetViolations(); len(v) > 0 {
		t.Errorf("Kamailio saw in-dialog requests that ignored the route set:\n%s", strings.Join(v, "\n"))
	}
}

// callAndAnswer places a call from caller to callee (a user of Domain),
// lets callee answer and waits until both sides report the call accepted
// and the callee the ACK. It returns the call ids on both sides.
func callAndAnswer(t *testing.T, caller, callee *Peer, calleeUser string) (callerCall, calleeCall string) {
	t.Helper()
	caller.Do(t, "call", "target", "sip:"+calleeUser+"@"+Domain)
	calling := caller.Expect(t, "calling")
	inv := callee.Expect(t, "invite")
	if got, want := inv.Get("from"), "sip:"+caller.User+"@"+Domain; got != want {
		t.Errorf("%s: invite from %q, want %q", callee.Name, got, want)
	}
	if got := inv.Get("callId"); got != calling.Get("callId") {
		t.Errorf("Call-ID changed through the proxy: caller %q, callee %q", calling.Get("callId"), got)
	}
	caller.Expect(t, "progress", "call", calling.Get("call"), "code", "180")
	callee.Do(t, "answer", "call", inv.Get("call"))
	callee.Expect(t, "accepted", "call", inv.Get("call"))
	caller.Expect(t, "accepted", "call", calling.Get("call"))
	callee.Expect(t, "ack", "call", inv.Get("call"))
	return calling.Get("call"), inv.Get("call")
}

// hangUp ends an established call from one side and checks both see it.
func hangUp(t *testing.T, by *Peer, byCall string, other *Peer, otherCall string) {
	t.Helper()
	by.Do(t, "hangup", "call", byCall)
	by.Expect(t, "terminated", "call", byCall, "reason", "local_bye")
	other.Expect(t, "terminated", "call", otherCall, "reason", "remote_bye")
}

// exchange runs the in-dialog requests both libraries support in an
// established call: INFO and re-INVITE each way.
func exchange(t *testing.T, a *Peer, aCall string, b *Peer, bCall string) {
	t.Helper()
	a.Do(t, "info", "call", aCall, "body", "Signal=1\r\nDuration=100\r\n")
	b.Expect(t, "info", "call", bCall, "contentType", "application/dtmf-relay", "body", "Signal=1\r\nDuration=100\r\n")
	a.Expect(t, "info_sent", "call", aCall, "code", "200")
	b.Do(t, "info", "call", bCall, "body", "Signal=2\r\nDuration=100\r\n")
	a.Expect(t, "info", "call", aCall, "body", "Signal=2\r\nDuration=100\r\n")
	b.Expect(t, "info_sent", "call", bCall, "code", "200")

	a.Do(t, "reinvite", "call", aCall)
	b.Expect(t, "reinvite", "call", bCall)
	a.Expect(t, "reinvite_sent", "call", aCall, "code", "200")
	b.Do(t, "reinvite", "call", bCall)
	a.Expect(t, "reinvite", "call", aCall)
	b.Expect(t, "reinvite_sent", "call", bCall, "code", "200")
}

// TestSIPjsToSIPjs: two SIP.js user agents over WebSocket register with
// Kamailio and call each other through it (407 on INVITE and MESSAGE,
// Record-Route, WS contact aliases): answer and hang up, INFO and
// re-INVITE both ways, a 486 rejection, a CANCEL and a MESSAGE.
func TestSIPjsToSIPjs(t *testing.T) {
	k := StartKamailio(t)
	alice := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "alice"})
	bob := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "bob"})
	registerPeers(t, alice, bob)

	t.Run("call", func(t *testing.T) {
		ac, bc := callAndAnswer(t, alice, bob, "bob")
		exchange(t, alice, ac, bob, bc)
		// MESSAGE inside the dialog (SIP.js only; JsSIP has no API for it).
		alice.Do(t, "message", "call", ac, "body", "in dialog")
		bob.Expect(t, "message", "call", bc, "body", "in dialog")
		alice.Expect(t, "message_sent", "call", ac, "code", "200")
		hangUp(t, alice, ac, bob, bc)
	})
	t.Run("reject486", func(t *testing.T) {
		alice.Do(t, "call", "target", "sip:bob@"+Domain)
		ac := alice.Expect(t, "calling").Get("call")
		bc := bob.Expect(t, "invite").Get("call")
		bob.Do(t, "reject", "call", bc, "code", 486)
		alice.Expect(t, "rejected", "call", ac, "code", "486")
		alice.Expect(t, "terminated", "call", ac, "reason", "rejected")
		bob.Expect(t, "terminated", "call", bc, "reason", "local_reject")
	})
	t.Run("cancel", func(t *testing.T) {
		bob.Do(t, "call", "target", "sip:alice@"+Domain)
		bc := bob.Expect(t, "calling").Get("call")
		ac := alice.Expect(t, "invite").Get("call")
		bob.Expect(t, "progress", "call", bc, "code", "180")
		bob.Do(t, "hangup", "call", bc)
		bob.Expect(t, "terminated", "call", bc, "reason", "canceled")
		alice.Expect(t, "terminated", "call", ac, "reason", "remote_cancel")
	})
	t.Run("message", func(t *testing.T) {
		alice.Do(t, "message", "target", "sip:bob@"+Domain, "body", "hello bob, from SIP.js")
		m := bob.Expect(t, "message")
		if m.Get("body") != "hello bob, from SIP.js" || m.Get("from") != "sip:alice@"+Domain {
			t.Errorf("bob got %s", m)
		}
		alice.Expect(t, "message_sent", "code", "200")
	})
	t.Run("unknown_user", func(t *testing.T) {
		alice.Do(t, "message", "target", "sip:nobody@"+Domain, "body", "anyone?")
		alice.Expect(t, "message_failed", "code", "404")
		alice.Do(t, "message", "target", "sip:carol@"+Domain, "body", "not registered")
		alice.Expect(t, "message_failed", "code", "480")
	})
	noRouteSetViolations(t, k)
}

// TestSIPjsJsSIP: SIP.js and JsSIP call each other through Kamailio, in
// both directions, with INFO, re-INVITE, MESSAGE, hang-up from either
// side, 486 rejections and CANCELs both ways.
func TestSIPjsJsSIP(t *testing.T) {
	k := StartKamailio(t)
	alice := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "alice"})
	bob := StartPeer(t, k, PeerConfig{Kind: JsSIP, User: "bob"})
	registerPeers(t, alice, bob)

	t.Run("sipjs_calls_jssip", func(t *testing.T) {
		ac, bc := callAndAnswer(t, alice, bob, "bob")
		exchange(t, alice, ac, bob, bc)
		hangUp(t, bob, bc, alice, ac)
	})
	t.Run("jssip_calls_sipjs", func(t *testing.T) {
		bc, ac := callAndAnswer(t, bob, alice, "alice")
		exchange(t, bob, bc, alice, ac)
		hangUp(t, alice, ac, bob, bc)
	})
	t.Run("jssip_rejected", func(t *testing.T) {
		bob.Do(t, "call", "target", "sip:alice@"+Domain)
		bc := bob.Expect(t, "calling").Get("call")
		ac := alice.Expect(t, "invite").Get("call")
		alice.Do(t, "reject", "call", ac, "code", 486)
		bob.Expect(t, "rejected", "call", bc, "code", "486")
		bob.Expect(t, "terminated", "call", bc, "reason", "rejected")
	})
	t.Run("sipjs_rejected", func(t *testing.T) {
		alice.Do(t, "call", "target", "sip:bob@"+Domain)
		ac := alice.Expect(t, "calling").Get("call")
		bc := bob.Expect(t, "invite").Get("call")
		bob.Do(t, "reject", "call", bc, "code", 486)
		alice.Expect(t, "rejected", "call", ac, "code", "486")
		alice.Expect(t, "terminated", "call", ac, "reason", "rejected")
	})
	t.Run("cancel_both_ways", func(t *testing.T) {
		bob.Do(t, "call", "target", "sip:alice@"+Domain)
		bc := bob.Expect(t, "calling").Get("call")
		ac := alice.Expect(t, "invite").Get("call")
		bob.Expect(t, "progress", "call", bc, "code", "180")
		bob.Do(t, "hangup", "call", bc)
		bob.Expect(t, "terminated", "call", bc, "reason", "canceled")
		alice.Expect(t, "terminated", "call", ac, "reason", "remote_cancel")

		alice.Do(t, "call", "target", "sip:bob@"+Domain)
		ac = alice.Expect(t, "calling").Get("call")
		bc = bob.Expect(t, "invite").Get("call")
		alice.Expect(t, "progress", "call", ac, "code", "180")
		alice.Do(t, "hangup", "call", ac)
		alice.Expect(t, "terminated", "call", ac, "reason", "canceled")
		bob.Expect(t, "terminated", "call", bc, "reason", "remote_cancel")
	})
	t.Run("message", func(t *testing.T) {
		alice.Do(t, "message", "target", "sip:bob@"+Domain, "body", "to JsSIP")
		bob.Expect(t, "message", "body", "to JsSIP", "from", "sip:alice@"+Domain)
		alice.Expect(t, "message_sent", "code", "200")
		bob.Do(t, "message", "target", "sip:alice@"+Domain, "body", "to SIP.js")
		alice.Expect(t, "message", "body", "to SIP.js", "from", "sip:bob@"+Domain)
		bob.Expect(t, "message_sent", "code", "200")
	})
	noRouteSetViolations(t, k)
}

// TestTransferREFER: alice (SIP.js) calls bob (JsSIP) and transfers him to
// carol (SIP.js) with an in-dialog REFER; bob follows it, calls carol, and
// alice learns the outcome from bob's NOTIFYs. Then carol transfers bob
// back to alice with SIP.js following a JsSIP REFER the other way round.
func TestTransferREFER(t *testing.T) {
	k := StartKamailio(t)
	alice := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "alice"})
	bob := StartPeer(t, k, PeerConfig{Kind: JsSIP, User: "bob"})
	carol := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "carol"})
	registerPeers(t, alice, bob, carol)

	ac, bc := callAndAnswer(t, alice, bob, "bob")
	alice.Do(t, "refer", "call", ac, "target", "sip:carol@"+Domain)
	alice.Expect(t, "refer_sent", "call", ac, "code", "202")
	bob.Expect(t, "refer", "call", bc, "target", "sip:carol@"+Domain)
	bc2 := bob.Expect(t, "calling").Get("call")
	cc := carol.Expect(t, "invite", "from", "sip:bob@"+Domain).Get("call")
	carol.Do(t, "answer", "call", cc)
	bob.Expect(t, "accepted", "call", bc2)
	alice.Expect(t, "notify", "call", ac, "body", "SIP/2.0 200 OK")
	hangUp(t, alice, ac, bob, bc)

	// JsSIP refers, SIP.js follows.
	bob.Do(t, "refer", "call", bc2, "target", "sip:alice@"+Domain)
	bob.Expect(t, "refer_sent", "call", bc2, "code", "202")
	carol.Expect(t, "refer", "call", cc, "target", "sip:alice@"+Domain)
	cc2 := carol.Expect(t, "calling").Get("call")
	ac2 := alice.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
	alice.Do(t, "answer", "call", ac2)
	carol.Expect(t, "accepted", "call", cc2)
	bob.Expect(t, "notify", "call", bc2, "body", "SIP/2.0 200 OK")
	hangUp(t, bob, bc2, carol, cc)
	hangUp(t, carol, cc2, alice, ac2)
	noRouteSetViolations(t, k)
}

// sippRegister registers user's contact at 127.0.0.1:contactPort with the
// REGISTER scenario (401, then 200 with credentials).
func sippRegister(t *testing.T, k *Kamailio, user string, contactPort uint16) *Sipp {
	t.Helper()
	reg := StartSipp(t, SippConfig{
		Scenario: "register.xml",
		Remote:   k.Target(transport.UDP).Addr.String(),
		User:     user, Password: Users[user],
		Keys:    map[string]string{"user": user, "domain": Domain, "contact_port": portStr(contactPort)},
		Timeout: 10 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := reg.Wait(ctx); err != nil {
		t.Fatalf("REGISTER of %s: %v", user, err)
	}
	msgs := reg.Messages()
	for _, want := range []string{"SIP/2.0 401 Unauthorized", "Authorization: Digest", "SIP/2.0 200 OK"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("REGISTER trace lacks %q:\n%s", want, msgs)
		}
	}
	return reg
}

// TestSippCallThroughKamailio: a sipp UAS registers (sipp REGISTER
// scenario, 401 then 200) as eve; a sipp UAC calls eve as dave through
// Kamailio, answers its 407, and both ends complete INVITE/200/ACK/BYE
// with the Record-Route set echoed by the UAS and followed by the UAC.
func TestSippCallThroughKamailio(t *testing.T) {
	k := StartKamailio(t)
	uas := StartSipp(t, SippConfig{Scenario: "uas.xml", Timeout: 20 * time.Second})
	sippRegister(t, k, "eve", uas.Port)
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
	if err := uac.Wait(ctx); err != nil {
		t.Fatalf("UAC: %v", err)
	}
	if err := uas.Wait(ctx); err != nil {
		t.Fatalf("UAS: %v", err)
	}
	uacMsgs, uasMsgs := uac.Messages(), uas.Messages()
	for _, want := range []string{"SIP/2.0 407 Proxy Authentication Required", "Proxy-Authorization: Digest",
		"Record-Route: <sip:127.0.0.1:" + portStr(k.SIPPort) + ";lr>", "Route: <sip:127.0.0.1:" + portStr(k.SIPPort) + ";lr>"} {
		if !strings.Contains(uacMsgs, want) {
			t.Errorf("UAC trace lacks %q", want)
		}
	}
	for _, want := range []string{"INVITE sip:eve@127.0.0.1:" + portStr(uas.Port), "Record-Route:", "BYE sip:uas@127.0.0.1:" + portStr(uas.Port)} {
		if !strings.Contains(uasMsgs, want) {
			t.Errorf("UAS trace lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("UAC trace:\n%s\nUAS trace:\n%s", uacMsgs, uasMsgs)
	}
	noRouteSetViolations(t, k)
}

// TestStrictRouteSetCheck proves that Kamailio's strict check fires: a
// BYE crafted with our transport package, with a To tag and no Route, is
// refused with 403 "Route set ignored"; and in a real call, a sipp UAC that
// sends its BYE without the Route set gets the same 403 (then ends the call
// properly); each violation is logged where RouteSetViolations finds it.
func TestStrictRouteSetCheck(t *testing.T) {
	k := StartKamailio(t)

	// A lone in-dialog request without Route, over UDP.
	callID := strictCraftedBYE(t, k)
	k.WaitLog(callID+" from ", 2*time.Second)
	v := k.RouteSetViolations()
	if len(v) != 1 || !strings.Contains(v[0], callID) {
		t.Fatalf("want one logged violation for Call-ID %s, got %q", callID, v)
	}

	// The same mistake inside a real call.
	uas := StartSipp(t, SippConfig{Scenario: "uas.xml", Timeout: 20 * time.Second})
	sippRegister(t, k, "carol", uas.Port)
	uac := StartSipp(t, SippConfig{
		Scenario: "uac-ignore-route.xml",
		Remote:   k.Target(transport.UDP).Addr.String(),
		User:     "dave", Password: Users["dave"],
		Service: "carol",
		Keys:    map[string]string{"user": "dave", "domain": Domain},
		Timeout: 15 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := uac.Wait(ctx); err != nil {
		t.Fatalf("UAC (expects 403 to its route-less BYE, then 200): %v", err)
	}
	if err := uas.Wait(ctx); err != nil {
		t.Fatalf("UAS: %v", err)
	}
	if !strings.Contains(uac.Messages(), "SIP/2.0 403 Route set ignored") {
		t.Errorf("UAC trace lacks the 403:\n%s", uac.Messages())
	}
	k.WaitLog("ROUTE-SET-IGNORED: BYE sip:uas@", 2*time.Second)
	v = k.RouteSetViolations()
	if len(v) != 2 || !strings.Contains(v[1], "BYE sip:uas@127.0.0.1:"+portStr(uas.Port)) {
		t.Errorf("want exactly one logged violation for the BYE, got %q", v)
	}
	if n := strings.Count(uas.Messages(), "BYE sip:"); n != 1 {
		t.Errorf("the UAS saw %d BYEs, want 1 (the route-less one must not be relayed)", n)
	}
}

// strictCraftedBYE sends Kamailio a BYE for a made-up dialog (To tag, no
// Route) through the transport package and expects 403 "Route set
// ignored". It returns the BYE's Call-ID.
func strictCraftedBYE(t *testing.T, k *Kamailio) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := make(chan transport.Incoming, 16)
	tr := transport.New(transport.Config{OnMessage: func(m transport.Incoming) {
		select {
		case in <- m:
		default:
		}
	}})
	defer tr.Close()
	if _, err := tr.Listen(ctx, transport.UDP, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	callID := message.NewCallID()
	raw := "BYE sip:bob@127.0.0.1:9 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP placeholder.invalid;branch=" + message.NewBranch() + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:alice@" + Domain + ">;tag=" + message.NewTag() + "\r\n" +
		"To: <sip:bob@" + Domain + ">;tag=" + message.NewTag() + "\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 2 BYE\r\n" +
		"Content-Length: 0\r\n\r\n"
	req, err := message.ParseRequest([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.SendRequest(ctx, req, k.Target(transport.UDP)); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-in:
			r, ok := m.Msg.(*message.Response)
			if !ok || m.Err != nil || r.Header.CallID() != callID || r.StatusCode < 200 {
				continue
			}
			if r.StatusCode != 403 || r.Reason != "Route set ignored" {
				t.Fatalf("route-less BYE: got %s, want 403 Route set ignored", r.StatusLine())
			}
			return callID
		case <-ctx.Done():
			t.Fatalf("no final response to the route-less BYE (Call-ID %s)", callID)
		}
	}
}

// TestKamailioConfigUsers checks that kamailio/kamailio.cfg knows exactly
// the users and passwords of Users.
func TestKamailioConfigUsers(t *testing.T) {
	cfg, err := os.ReadFile(filepath.Join("kamailio", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`case "([a-z]+)":\s*\$var\(pw\) = "([^"]*)";`)
	got := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(cfg), -1) {
		got[m[1]] = m[2]
	}
	if len(got) != len(Users) {
		t.Errorf("kamailio.cfg has %d users, Users %d: %v", len(got), len(Users), got)
	}
	for u, pw := range Users {
		if got[u] != pw {
			t.Errorf("user %s: kamailio.cfg password %q, Users %q", u, got[u], pw)
		}
	}
}

// TestSIPjsCallsSippOverUDP: a call that changes transport in Kamailio.
// SIP.js (WS) calls eve, a sipp UAS registered over UDP; Kamailio
// record-routes twice (double RR, one entry per interface), the UAS echoes
// both, and SIP.js's ACK and BYE come back with the whole Route set.
func TestSIPjsCallsSippOverUDP(t *testing.T) {
	k := StartKamailio(t)
	uas := StartSipp(t, SippConfig{Scenario: "uas.xml", Timeout: 20 * time.Second})
	sippRegister(t, k, "eve", uas.Port)
	alice := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "alice"})
	registerPeers(t, alice)

	alice.Do(t, "call", "target", "sip:eve@"+Domain)
	ac := alice.Expect(t, "calling").Get("call")
	alice.Expect(t, "progress", "call", ac, "code", "180")
	alice.Expect(t, "accepted", "call", ac)
	alice.Do(t, "hangup", "call", ac)
	alice.Expect(t, "terminated", "call", ac, "reason", "local_bye")
	alice.Expect(t, "bye_sent", "call", ac, "code", "200")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := uas.Wait(ctx); err != nil {
		t.Fatalf("UAS: %v", err)
	}
	msgs := uas.Messages()
	udpRR := "<sip:127.0.0.1:" + portStr(k.SIPPort) + ";r2=on;lr>"
	wsRR := "<sip:127.0.0.1:" + portStr(k.WSPort) + ";transport=ws;r2=on;lr>"
	for _, want := range []string{udpRR, wsRR, "ACK sip:uas@127.0.0.1:" + portStr(uas.Port), "BYE sip:uas@127.0.0.1:" + portStr(uas.Port)} {
		if !strings.Contains(msgs, want) {
			t.Errorf("UAS trace lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("UAS trace:\n%s", msgs)
	}
	noRouteSetViolations(t, k)
}
