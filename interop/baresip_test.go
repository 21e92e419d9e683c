package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBaresipRegisters: baresip registers with Kamailio over UDP from its
// accounts file (REGISTER, 401 with a digest challenge, REGISTER with
// Authorization, 200, as its SIP trace shows), and accounts added over
// ctrl_tcp report REGISTER_OK, or REGISTER_FAIL for a wrong password.
func TestBaresipRegisters(t *testing.T) {
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice"})

	// UDP retransmissions (a loaded machine delays Kamailio's answer past
	// Timer E) repeat a message already in the ladder: keep the first copy.
	var regs []BaresipSIPMessage
	seen := map[string]bool{}
	for _, m := range b.SIPTrace() {
		if !strings.HasSuffix(m.Header("CSeq"), " REGISTER") {
			continue
		}
		key := fmt.Sprint(m.Sent, m.StartLine, m.Header("CSeq"), m.Header("Via"))
		if seen[key] {
			continue
		}
		seen[key] = true
		regs = append(regs, m)
	}
	var ladder []string
	for _, m := range regs {
		ladder = append(ladder, m.String())
	}
	if len(regs) < 4 {
		t.Fatalf("want REGISTER, 401, REGISTER, 200 in baresip's trace, got:\n%s", strings.Join(ladder, "\n"))
	}
	r1, c401, r2, ok := regs[0], regs[1], regs[2], regs[3]
	switch {
	case !r1.Sent || !strings.HasPrefix(r1.StartLine, "REGISTER sip:"+Domain) || r1.Header("Authorization") != "":
		t.Errorf("first REGISTER: %s (Authorization %q)", r1, r1.Header("Authorization"))
	case c401.Sent || !strings.HasPrefix(c401.StartLine, "SIP/2.0 401"):
		t.Errorf("want 401 to the first REGISTER, got %s", c401)
	case !strings.Contains(c401.Header("WWW-Authenticate"), `realm="`+Domain+`"`):
		t.Errorf("401 challenge: %q", c401.Header("WWW-Authenticate"))
	case !r2.Sent || !strings.HasPrefix(r2.StartLine, "REGISTER ") ||
		!strings.Contains(r2.Header("Authorization"), `username="alice"`):
		t.Errorf("second REGISTER: %s (Authorization %q)", r2, r2.Header("Authorization"))
	case ok.Sent || !strings.HasPrefix(ok.StartLine, "SIP/2.0 200"):
		t.Errorf("want 200 to the second REGISTER, got %s", ok)
	case r1.Dst != "127.0.0.1:"+portStr(k.SIPPort) || r1.Src != "127.0.0.1:"+portStr(b.SIPPort):
		t.Errorf("REGISTER went %s -> %s, want 127.0.0.1:%d -> 127.0.0.1:%d", r1.Src, r1.Dst, b.SIPPort, k.SIPPort)
	}
	if t.Failed() {
		t.Logf("REGISTER ladder:\n%s", strings.Join(ladder, "\n"))
	}

	// A second user agent in the same baresip, created over ctrl_tcp: its
	// registration events reach the test.
	b.Do(t, "uanew", baresipAccount(k, "carol", Users["carol"], BaresipManual, 600))
	b.Expect(t, "REGISTERING", "accountaor", "sip:carol@"+Domain)
	b.Expect(t, "REGISTER_OK", "accountaor", "sip:carol@"+Domain, "param", "200 OK")
	b.WaitRegistered(t, "sip:carol@"+Domain)

	// A wrong password: Kamailio challenges again and baresip gives up.
	b.Do(t, "uanew", baresipAccount(k, "dave", "not-daves-password", BaresipManual, 600))
	b.Expect(t, "REGISTER_FAIL", "accountaor", "sip:dave@"+Domain, "param", "401 Unauthorized")
}

// TestBaresipSIPjs: baresip (UDP, plain RTP) and SIP.js (WebSocket, no
// media in Node) call each other through Kamailio, which record-routes
// and demands digest authentication: baresip calls SIP.js, which answers;
// SIP.js calls baresip, which answers by itself (answermode auto) or on
// the accept command; hang-up from either side, a CANCEL and a rejection.
// Only signalling is checked: INVITE/407/180/200/ACK/BYE, the Call-ID end
// to end, and that every in-dialog request followed the route set.
func TestBaresipSIPjs(t *testing.T) {
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto})
	bob := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "bob"})
	registerPeers(t, bob)

	t.Run("baresip_calls_sipjs/baresip_hangs_up", func(t *testing.T) {
		b.Do(t, "dial", "sip:bob@"+Domain)
		inv := bob.Expect(t, "invite")
		if got, want := inv.Get("from"), b.AOR; got != want {
			t.Errorf("SIP.js: invite from %q, want %q", got, want)
		}
		ring := b.Expect(t, "CALL_RINGING", "direction", "outgoing")
		if ring.Get("id") != inv.Get("callId") {
			t.Errorf("Call-ID changed through the proxy: baresip %q, SIP.js %q", ring.Get("id"), inv.Get("callId"))
		}
		bob.Do(t, "answer", "call", inv.Get("call"))
		bob.Expect(t, "accepted", "call", inv.Get("call"))
		b.Expect(t, "CALL_ESTABLISHED", "id", ring.Get("id"), "direction", "outgoing")
		bob.Expect(t, "ack", "call", inv.Get("call"))
		b.Do(t, "hangup")
		b.Expect(t, "CALL_CLOSED", "id", ring.Get("id"), "param", "Connection reset by user")
		bob.Expect(t, "terminated", "call", inv.Get("call"), "reason", "remote_bye")
	})

	t.Run("baresip_calls_sipjs/sipjs_hangs_up", func(t *testing.T) {
		b.Do(t, "dial", "sip:bob@"+Domain)
		inv := bob.Expect(t, "invite")
		id := b.Expect(t, "CALL_RINGING").Get("id")
		bob.Do(t, "answer", "call", inv.Get("call"))
		b.Expect(t, "CALL_ESTABLISHED", "id", id)
		bob.Expect(t, "ack", "call", inv.Get("call"))
		bob.Do(t, "hangup", "call", inv.Get("call"))
		bob.Expect(t, "terminated", "call", inv.Get("call"), "reason", "local_bye")
		b.Expect(t, "CALL_CLOSED", "id", id, "param", "Connection reset by peer")
	})

	t.Run("baresip_calls_sipjs/cancel", func(t *testing.T) {
		b.Do(t, "dial", "sip:bob@"+Domain)
		inv := bob.Expect(t, "invite")
		id := b.Expect(t, "CALL_RINGING").Get("id")
		b.Do(t, "hangup")
		b.Expect(t, "CALL_CLOSED", "id", id)
		bob.Expect(t, "terminated", "call", inv.Get("call"), "reason", "remote_cancel")
	})

	t.Run("baresip_calls_sipjs/rejected", func(t *testing.T) {
		b.Do(t, "dial", "sip:bob@"+Domain)
		inv := bob.Expect(t, "invite")
		id := b.Expect(t, "CALL_RINGING").Get("id")
		bob.Do(t, "reject", "call", inv.Get("call"), "code", 486)
		closed := b.Expect(t, "CALL_CLOSED", "id", id)
		if !strings.Contains(closed.Get("param"), "486") {
			t.Errorf("baresip: call closed with %q, want the 486", closed.Get("param"))
		}
		bob.Expect(t, "terminated", "call", inv.Get("call"), "reason", "local_reject")
	})

	t.Run("sipjs_calls_baresip/auto_answer/sipjs_hangs_up", func(t *testing.T) {
		bob.Do(t, "call", "target", b.AOR)
		calling := bob.Expect(t, "calling")
		est := b.Expect(t, "CALL_ESTABLISHED", "direction", "incoming")
		if est.Get("id") != calling.Get("callId") {
			t.Errorf("Call-ID changed through the proxy: SIP.js %q, baresip %q", calling.Get("callId"), est.Get("id"))
		}
		if got, want := est.Get("peeruri"), "sip:bob@"+Domain; got != want {
			t.Errorf("baresip: call from %q, want %q", got, want)
		}
		bob.Expect(t, "accepted", "call", calling.Get("call"))
		bob.Do(t, "hangup", "call", calling.Get("call"))
		bob.Expect(t, "terminated", "call", calling.Get("call"), "reason", "local_bye")
		b.Expect(t, "CALL_CLOSED", "id", est.Get("id"), "param", "Connection reset by peer")
	})

	t.Run("sipjs_calls_baresip/auto_answer/baresip_hangs_up", func(t *testing.T) {
		bob.Do(t, "call", "target", b.AOR)
		calling := bob.Expect(t, "calling")
		est := b.Expect(t, "CALL_ESTABLISHED", "direction", "incoming")
		bob.Expect(t, "accepted", "call", calling.Get("call"))
		b.Do(t, "hangup")
		b.Expect(t, "CALL_CLOSED", "id", est.Get("id"), "param", "Connection reset by user")
		bob.Expect(t, "terminated", "call", calling.Get("call"), "reason", "remote_bye")
	})

	t.Run("sipjs_calls_baresip/accept", func(t *testing.T) {
		b.Do(t, "answermode", string(BaresipManual))
		defer b.Do(t, "answermode", string(BaresipAuto))
		bob.Do(t, "call", "target", b.AOR)
		calling := bob.Expect(t, "calling")
		in := b.Expect(t, "CALL_INCOMING", "peeruri", "sip:bob@"+Domain)
		bob.Expect(t, "progress", "call", calling.Get("call"), "code", "180")
		b.Do(t, "accept")
		b.Expect(t, "CALL_ESTABLISHED", "id", in.Get("id"))
		bob.Expect(t, "accepted", "call", calling.Get("call"))
		b.Do(t, "hangup")
		b.Expect(t, "CALL_CLOSED", "id", in.Get("id"))
		bob.Expect(t, "terminated", "call", calling.Get("call"), "reason", "remote_bye")
	})

	t.Run("sipjs_calls_baresip/reject", func(t *testing.T) {
		b.Do(t, "answermode", string(BaresipManual))
		defer b.Do(t, "answermode", string(BaresipAuto))
		bob.Do(t, "call", "target", b.AOR)
		calling := bob.Expect(t, "calling")
		in := b.Expect(t, "CALL_INCOMING")
		b.Do(t, "hangup")
		b.Expect(t, "CALL_CLOSED", "id", in.Get("id"))
		rej := bob.Expect(t, "rejected", "call", calling.Get("call"))
		if c := rej.Get("code"); len(c) != 3 || c[0] < '4' {
			t.Errorf("SIP.js: call refused with %q, want a 4xx-6xx", c)
		}
		bob.Expect(t, "terminated", "call", calling.Get("call"), "reason", "rejected")
	})

	noRouteSetViolations(t, k)
}

// TestBaresipRTP: two baresip instances call each other through Kamailio
// and RTP (PCMU, a 440 Hz tone from ausine) flows both ways on 127.0.0.1:
// each side reports CALL_RTPESTAB and its audio stream counts packets
// received from the other.
func TestBaresipRTP(t *testing.T) {
	k := StartKamailio(t)
	alice := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto})
	bob := StartBaresip(t, k, BaresipConfig{User: "bob"})

	bob.Do(t, "dial", alice.AOR)
	in := alice.Expect(t, "CALL_ESTABLISHED", "direction", "incoming", "peeruri", bob.AOR)
	bob.Expect(t, "CALL_ESTABLISHED", "id", in.Get("id"), "direction", "outgoing")
	alice.Expect(t, "CALL_RTPESTAB", "id", in.Get("id"), "param", "audio")
	bob.Expect(t, "CALL_RTPESTAB", "id", in.Get("id"), "param", "audio")

	// 20 ms packets: wait for half a second's worth each way.
	const want = 25
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range []*Baresip{alice, bob} {
		for {
			sent, received, err := b.AudioPackets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sent >= want && received >= want {
				t.Logf("%s: %d RTP packets sent, %d received", b.Name, sent, received)
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %d RTP packets sent, %d received; want %d each way", b.Name, sent, received, want)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	// The offer as alice received it: plain RTP on loopback.
	var offer string
	for _, m := range alice.SIPTrace() {
		if !m.Sent && strings.HasPrefix(m.StartLine, "INVITE ") && m.Header("Content-Type") == "application/sdp" {
			offer = m.Body
		}
	}
	for _, want := range []string{"c=IN IP4 127.0.0.1\r\n", " RTP/AVP 0 8 ", "a=rtpmap:0 PCMU/8000\r\n"} {
		if !strings.Contains(offer, want) {
			t.Errorf("alice: offer lacks %q:\n%s", want, offer)
		}
	}

	bob.Do(t, "hangup")
	bob.Expect(t, "CALL_CLOSED", "id", in.Get("id"), "param", "Connection reset by user")
	alice.Expect(t, "CALL_CLOSED", "id", in.Get("id"), "param", "Connection reset by peer")
	noRouteSetViolations(t, k)
}
