package interop

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media/wav"
)

// softphoneArgs returns the softphone's flags for user at k over
// transport (plain RTP on 127.0.0.1), then extra.
func softphoneArgs(k *Kamailio, transport, user string, extra ...string) []string {
	port := k.SIPPort
	switch transport {
	case "ws":
		port = k.WSPort
	case "tls":
		port = k.TLSPort
	}
	args := []string{"-server", "127.0.0.1:" + strconv.Itoa(int(port)), "-transport", transport,
		"-domain", Domain, "-user", user, "-password", Users[user], "-media", "rtp", "-media-ip", "127.0.0.1"}
	return append(args, extra...)
}

// TestSoftphoneWithSIPjs drives the softphone example (a process, through
// its standard input) against Kamailio and a SIP.js peer: it registers,
// calls the peer, which answers; sends DTMF (by INFO, -dtmf info: the
// peer offers telephone-event but has no media to receive it), holds and resumes, exchanges MESSAGEs, hangs up;
// transfers the peer to a second SIP.js peer (blind); then the peer calls
// it and it answers, and the peer hangs up; a last call is rejected.
func TestSoftphoneWithSIPjs(t *testing.T) {
	bin := BuildExamples(t, "softphone")[0]
	k := StartKamailio(t)
	peer := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "dave"})
	registerPeers(t, peer)

	pcap := filepath.Join(t.TempDir(), "softphone.pcap")
	sp := StartApp(t, "softphone/alice", bin, softphoneArgs(k, "udp", "alice", "-status-every", "500ms", "-dtmf", "info", "-trace", pcap)...)
	sp.Expect(t, `^registered as sip:alice@sipua.test$`)

	// We call, the peer answers.
	sp.Send(t, "call dave")
	pc := peer.Expect(t, "invite", "from", "sip:alice@"+Domain).Get("call")
	sp.Expect(t, `^call 1: ringing \(180\)$`)
	peer.Do(t, "answer", "call", pc)
	sp.Expect(t, `^call 1: established with sip:dave@sipua.test$`)
	peer.Expect(t, "accepted", "call", pc)
	sp.Expect(t, `^call 1: outgoing sip:dave@sipua.test Established 0:0\d$`) // the periodic status

	sp.Send(t, "dtmf 5#")
	sp.Expect(t, `^call 1: dtmf 5# sent \(info\)$`)
	peer.Expect(t, "info", "call", pc, "body", "Signal=5\r\nDuration=100\r\n")
	peer.Expect(t, "info", "call", pc, "body", "Signal=#\r\nDuration=100\r\n")

	// SIP.js refuses (500) a re-INVITE that comes while it still processes
	// the ACK (RFC 5407 §3.1.5): the DTMF above took long enough.
	sp.Send(t, "hold")
	sp.Expect(t, `^call 1: on hold$`)
	peer.Expect(t, "reinvite", "call", pc, "direction", "sendonly")
	sp.Send(t, "status")
	sp.Expect(t, `^call 1: outgoing sip:dave@sipua.test Established \d:\d\d, on hold$`)
	time.Sleep(300 * time.Millisecond)
	sp.Send(t, "unhold")
	sp.Expect(t, `^call 1: resumed$`)
	peer.Expect(t, "reinvite", "call", pc, "direction", "sendrecv")

	sp.Send(t, "message dave hello from the softphone")
	sp.Expect(t, `^message sent to sip:dave@sipua.test$`)
	peer.Expect(t, "message", "body", "hello from the softphone")
	peer.Do(t, "message", "target", "sip:alice@"+Domain, "body", "hi alice")
	sp.Expect(t, `^message from sip:dave@sipua.test: hi alice$`)

	sp.Send(t, "hangup")
	sp.Expect(t, `^call 1: ended: local BYE after \d:\d\d$`)
	peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")

	// Blind transfer: we call dave again and transfer him to eve (SIP.js
	// too); dave follows the REFER, eve answers, we hang up.
	eve := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "eve"})
	registerPeers(t, eve)
	sp.Send(t, "call dave")
	pc = peer.Expect(t, "invite").Get("call")
	peer.Do(t, "answer", "call", pc)
	sp.Expect(t, `^call 2: established with sip:dave@sipua.test$`)
	peer.Expect(t, "ack", "call", pc)
	sp.Send(t, "transfer eve")
	sp.Expect(t, `^call 2: transfer to sip:eve@sipua.test accepted$`)
	peer.Expect(t, "refer", "call", pc, "target", "sip:eve@"+Domain)
	dc := peer.Expect(t, "calling", "referredBy", pc).Get("call")
	ec := eve.Expect(t, "invite", "from", "sip:dave@"+Domain).Get("call")
	eve.Do(t, "answer", "call", ec)
	sp.Expect(t, `^call 2: transfer done$`)
	sp.Expect(t, `^call 2: ended: local BYE`)
	peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")
	eve.Expect(t, "accepted", "call", ec)
	peer.Expect(t, "accepted", "call", dc)
	eve.Do(t, "hangup", "call", ec)
	peer.Expect(t, "terminated", "call", dc, "reason", "remote_bye")

	// The peer calls, we answer, the peer hangs up.
	peer.Do(t, "call", "target", "sip:alice@"+Domain)
	pc = peer.Expect(t, "calling").Get("call")
	sp.Expect(t, `^call 3: incoming from sip:dave@sipua.test \(answer or reject\)$`)
	peer.Expect(t, "progress", "call", pc, "code", "180")
	sp.Send(t, "answer")
	peer.Expect(t, "accepted", "call", pc)
	sp.Expect(t, `^call 3: established with sip:dave@sipua.test$`)
	peer.Do(t, "hangup", "call", pc)
	sp.Expect(t, `^call 3: ended: remote BYE`)

	// And a rejected one.
	peer.Do(t, "call", "target", "sip:alice@"+Domain)
	pc = peer.Expect(t, "calling").Get("call")
	sp.Expect(t, `^call 4: incoming from`)
	sp.Send(t, "reject 603")
	peer.Expect(t, "rejected", "call", pc, "code", "603")

	sp.Send(t, "quit")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := sp.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	noRouteSetViolations(t, k)

	// The -trace pcap opens in tshark with the session's requests.
	tshark, err := exec.LookPath("tshark")
	require.NoError(t, err, "tshark is missing: run interop/install.sh")
	cmd := exec.CommandContext(ctx, tshark, "-r", pcap, "-Y", "sip.Method", "-T", "fields", "-e", "sip.Method")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "tshark: %s", stderr.String())
	methods := map[string]int{}
	for _, m := range strings.Fields(string(out)) {
		methods[m]++
	}
	t.Logf("requests in the softphone's pcap (tshark): %v", methods)
	for _, m := range []string{"REGISTER", "INVITE", "ACK", "INFO", "MESSAGE", "REFER", "NOTIFY", "BYE"} {
		assert.Positive(t, methods[m], "no %s in the pcap", m)
	}
}

// TestSoftphoneErrorsKamailio: a wrong password makes the softphone exit
// with code 4 and say so; a server that does not answer, with code 3.
func TestSoftphoneErrorsKamailio(t *testing.T) {
	bin := BuildExamples(t, "softphone")[0]
	k := StartKamailio(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	args := softphoneArgs(k, "tcp", "alice", "-password", "not-the-password")
	sp := StartApp(t, "softphone/wrong-password", bin, args...)
	code, err := sp.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, code, sp.Stderr())
	assert.Contains(t, sp.Stderr(), "authentication failed: the server refused the credentials of sip:alice@sipua.test")

	// Kamailio's UDP port with Kamailio stopped: nothing answers.
	port, err := freeUDPBlock(1)
	require.NoError(t, err)
	sp = StartApp(t, "softphone/unreachable", bin, "-server", "127.0.0.1:"+strconv.Itoa(int(port)),
		"-domain", Domain, "-user", "alice", "-password", Users["alice"], "-timeout", "1s")
	code, err = sp.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, code, sp.Stderr())
	assert.Contains(t, sp.Stderr(), "server unreachable: no answer from sip:127.0.0.1:"+strconv.Itoa(int(port))+" within 1s")
}

// TestSoftphoneCallsBot: the bot example (bob, over TCP) and the
// softphone (alice, over UDP) through Kamailio with plain RTP. The
// softphone plays a WAV file (1200 Hz) and records what it hears; the
// recording holds the bot's prompt (its default beeps, 660 and 880 Hz)
// and then the softphone's own tone echoed. The softphone's RFC 4733
// digits are printed by the bot. Then baresip calls the bot while the
// softphone's call is up: audio reaches baresip, baresip's tone reaches
// the bot as a digit, and the bot served the two calls at once.
func TestSoftphoneCallsBot(t *testing.T) {
	bins := BuildExamples(t, "softphone", "bot")
	sbin, bbin := bins[0], bins[1]
	k := StartKamailio(t)
	bot := StartApp(t, "bot/bob", bbin, "-server", "127.0.0.1:"+strconv.Itoa(int(k.SIPPort)), "-transport", "tcp",
		"-domain", Domain, "-user", "bob", "-password", Users["bob"], "-media", "rtp", "-media-ip", "127.0.0.1")
	bot.Expect(t, `^bot: ready for calls$`)

	dir := t.TempDir()
	play, rec := filepath.Join(dir, "play.wav"), filepath.Join(dir, "rec.wav")
	tone := make([]int16, 5*wav.SampleRate)
	for i := range tone {
		tone[i] = int16(8000 * math.Sin(2*math.Pi*1200*float64(i)/wav.SampleRate))
	}
	require.NoError(t, wav.WriteFile(play, tone))
	sp := StartApp(t, "softphone/alice", sbin, softphoneArgs(k, "udp", "alice", "-play", play, "-record", rec)...)
	sp.Expect(t, `^registered as`)

	sp.Send(t, "call bob")
	sp.Expect(t, `^call 1: established with sip:bob@sipua.test$`)
	bot.Expect(t, `^call 1: incoming from sip:alice@sipua.test`)
	bot.Expect(t, `^call 1: prompt done, echoing$`)
	sp.Send(t, "dtmf 1234#")
	sp.Expect(t, `^call 1: dtmf 1234# sent \(rtp\)$`)
	bot.Expect(t, `^call 1: digits 1234#$`)

	// baresip calls the bot too.
	b := StartBaresip(t, k, BaresipConfig{User: "carol"})
	b.Do(t, "dial", "sip:bob@"+Domain)
	b.Expect(t, "CALL_ESTABLISHED", "direction", "outgoing")
	bot.Expect(t, `^call 2: incoming from sip:carol@sipua.test`)
	bot.Expect(t, `^call 2: prompt done, echoing$`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		_, received, err := b.AudioPackets(ctx)
		return err == nil && received >= 50
	}, 8*time.Second, 100*time.Millisecond, "baresip receives the bot's audio")
	b.Do(t, "sndcode", "7")
	bot.Expect(t, `^call 2: digit 7$`)
	b.Do(t, "hangup")
	b.Expect(t, "CALL_CLOSED")
	bot.Expect(t, `^call 2: digits 7$`) // left over at the end
	bot.Expect(t, `^call 2: ended: remote BYE$`)

	sp.Send(t, "hangup")
	sp.Expect(t, `^call 1: ended: local BYE`)
	sp.Expect(t, `^call 1: recorded \d+\.\d s$`)
	bot.Expect(t, `^call 1: ended: remote BYE$`)

	s, err := wav.ReadFile(rec)
	require.NoError(t, err)
	level := func(hz float64) float64 {
		var best float64
		for i := 0; i+800 <= len(s); i += 400 {
			best = max(best, wav.ToneLevel(s[i:i+800], hz))
		}
		return best
	}
	t.Logf("recorded %.1f s: 660 Hz %.3f, 880 Hz %.3f (prompt), 1200 Hz %.3f (echo)",
		float64(len(s))/wav.SampleRate, level(660), level(880), level(1200))
	assert.Greater(t, level(660), 0.05, "no prompt in the recording")
	assert.Greater(t, level(880), 0.05, "no prompt in the recording")
	assert.Greater(t, level(1200), 0.05, "no echo in the recording")

	require.NoError(t, bot.Signal(syscall.SIGTERM))
	bot.Expect(t, `^bot: stopped taking calls$`)
	code, err := bot.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	noRouteSetViolations(t, k)
}

// TestSoftphoneTransports: the softphone registers with Kamailio over
// TCP, TLS, WS and WSS (-ca trusts Kamailio's self-signed certificate)
// and sends a MESSAGE to a SIP.js peer over each.
func TestSoftphoneTransports(t *testing.T) {
	bin := BuildExamples(t, "softphone")[0]
	k := StartKamailio(t)
	peer := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "dave"})
	registerPeers(t, peer)
	for _, tr := range []string{"tcp", "tls", "ws", "wss"} {
		t.Run(tr, func(t *testing.T) {
			args := softphoneArgs(k, tr, "alice", "-ca", filepath.Join(k.Dir, "cert.pem"))
			if tr == "wss" { // softphoneArgs knows the TLS port, not the WSS one
				args[1] = "127.0.0.1:" + strconv.Itoa(int(k.WSSPort))
			}
			sp := StartApp(t, "softphone/alice/"+tr, bin, args...)
			sp.Expect(t, `^registered as sip:alice@sipua.test$`)
			sp.Send(t, "message dave over "+tr)
			sp.Expect(t, `^message sent to sip:dave@sipua.test$`)
			peer.Expect(t, "message", "body", "over "+tr)
			sp.Send(t, "quit")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code, err := sp.Wait(ctx)
			require.NoError(t, err)
			assert.Equal(t, 0, code)
		})
	}
}

// TestSoftphoneBaresip: the softphone calls baresip (auto-answer, plain
// RTP, sending a 440 Hz sine) through Kamailio and records the call: the
// WAV file holds baresip's 440 Hz. Its RFC 4733 digit reaches baresip;
// then baresip calls the softphone, which answers and prints the digit
// baresip sends.
func TestSoftphoneBaresip(t *testing.T) {
	bin := BuildExamples(t, "softphone")[0]
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "carol", AnswerMode: BaresipAuto})
	rec := filepath.Join(t.TempDir(), "rec.wav")
	sp := StartApp(t, "softphone/alice", bin, softphoneArgs(k, "udp", "alice", "-record", rec)...)
	sp.Expect(t, `^registered as`)

	sp.Send(t, "call carol")
	sp.Expect(t, `^call 1: established with sip:carol@sipua.test$`)
	b.Expect(t, "CALL_ESTABLISHED", "direction", "incoming")
	b.Expect(t, "CALL_RTPESTAB")
	time.Sleep(time.Second) // audio flows
	sp.Send(t, "dtmf 5")
	sp.Expect(t, `^call 1: dtmf 5 sent \(rtp\)$`)
	b.Expect(t, "CALL_DTMF_START", "param", "5")
	sp.Send(t, "hangup")
	sp.Expect(t, `^call 1: recorded \d+\.\d s$`)
	b.Expect(t, "CALL_CLOSED")

	s, err := wav.ReadFile(rec)
	require.NoError(t, err)
	var best float64
	for i := 0; i+800 <= len(s); i += 400 {
		best = max(best, wav.ToneLevel(s[i:i+800], 440))
	}
	t.Logf("recorded %.1f s from baresip: 440 Hz level %.3f, overall level %.3f", float64(len(s))/wav.SampleRate, best, wav.Level(s))
	assert.Greater(t, best, 0.05, "baresip's 440 Hz is not in the recording")

	b.Do(t, "dial", "sip:alice@"+Domain)
	sp.Expect(t, `^call 2: incoming from sip:carol@sipua.test`)
	sp.Send(t, "answer")
	sp.Expect(t, `^call 2: established with sip:carol@sipua.test$`)
	b.Expect(t, "CALL_ESTABLISHED", "direction", "outgoing")
	b.Expect(t, "CALL_RTPESTAB")
	b.Do(t, "sndcode", "8")
	sp.Expect(t, `^call 2: dtmf 8 received$`)
	b.Do(t, "hangup")
	sp.Expect(t, `^call 2: ended: remote BYE`)
	noRouteSetViolations(t, k)
}

// TestSoftphoneAttendedTransfer: SIP.js dave calls the softphone (alice),
// which answers, holds dave, calls the bot program (bob) and joins the two
// with atransfer: dave follows the REFER with an INVITE carrying Replaces
// to the bot, whose new call replaces the softphone's call with it.
func TestSoftphoneAttendedTransfer(t *testing.T) {
	bins := BuildExamples(t, "softphone", "bot")
	k := StartKamailio(t)
	bot := StartApp(t, "bot/bob", bins[1], "-server", "127.0.0.1:"+strconv.Itoa(int(k.SIPPort)), "-transport", "tcp",
		"-domain", Domain, "-user", "bob", "-password", Users["bob"], "-media-ip", "127.0.0.1")
	bot.Expect(t, `^bot: ready for calls$`)
	dave := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "dave"})
	registerPeers(t, dave)
	sp := StartApp(t, "softphone/alice", bins[0], softphoneArgs(k, "udp", "alice")...)
	sp.Expect(t, `^registered as`)

	dave.Do(t, "call", "target", "sip:alice@"+Domain)
	dc := dave.Expect(t, "calling").Get("call")
	sp.Expect(t, `^call 1: incoming from sip:dave@sipua.test`)
	sp.Send(t, "answer")
	sp.Expect(t, `^call 1: established with sip:dave@sipua.test$`)
	dave.Expect(t, "accepted", "call", dc)
	time.Sleep(500 * time.Millisecond) // RFC 5407: SIP.js must be done with the ACK before a re-INVITE
	sp.Send(t, "hold")
	sp.Expect(t, `^call 1: on hold$`)
	dave.Expect(t, "reinvite", "call", dc, "direction", "sendonly")

	sp.Send(t, "call bob")
	sp.Expect(t, `^call 2: established with sip:bob@sipua.test$`)
	bot.Expect(t, `^call 1: incoming from sip:alice@sipua.test`)
	sp.Send(t, "atransfer")
	sp.Expect(t, `^call 1: transfer to the peer of call 2 accepted$`)
	dave.Expect(t, "refer", "call", dc)
	dc2 := dave.Expect(t, "calling", "referredBy", dc).Get("call")
	bot.Expect(t, `^call 2: incoming from sip:dave@sipua.test`)
	bot.Expect(t, `^call 1: ended: replaced$`)
	dave.Expect(t, "accepted", "call", dc2)
	sp.Expect(t, `^call 2: ended: remote BYE`)
	sp.Expect(t, `^call 1: transfer done$`)
	sp.Expect(t, `^call 1: ended: local BYE`)
	dave.Expect(t, "terminated", "call", dc, "reason", "remote_bye")
	bot.Expect(t, `^call 2: answered, playing the prompt$`)
	dave.Do(t, "hangup", "call", dc2)
	bot.Expect(t, `^call 2: ended: remote BYE$`)
	noRouteSetViolations(t, k)
}
