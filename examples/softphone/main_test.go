package main

import (
	"context"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/examples/bot/botcore"
	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
)

// lines collects what the softphone prints, line by line.
type lines struct {
	mu      sync.Mutex
	all     []string
	partial string
	changed chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.partial + string(p)
	parts := strings.Split(s, "\n")
	l.partial = parts[len(parts)-1]
	l.all = append(l.all, parts[:len(parts)-1]...)
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// term drives a softphone's run through its standard input.
type term struct {
	t      *testing.T
	in     *io.PipeWriter
	out    *lines
	errOut *lines
	done   chan int
	mark   int // expect looks at lines from here on
}

func startPhone(t *testing.T, args ...string) *term {
	inR, inW := io.Pipe()
	tm := &term{t: t, in: inW, out: &lines{changed: make(chan struct{}, 1)}, errOut: &lines{changed: make(chan struct{}, 1)}, done: make(chan int, 1)}
	go func() {
		tm.done <- run(context.Background(), args, func(string) string { return "" }, inR, tm.out, tm.errOut)
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-tm.done:
		case <-time.After(10 * time.Second):
			t.Error("the softphone did not exit at the end of its input")
		}
		if t.Failed() {
			t.Logf("softphone output:\n%s\nstderr:\n%s", strings.Join(tm.out.all, "\n"), strings.Join(tm.errOut.all, "\n"))
		}
	})
	return tm
}

// send writes a command; later expects look at the lines after it.
func (tm *term) send(cmd string) {
	tm.out.mu.Lock()
	tm.mark = len(tm.out.all)
	tm.out.mu.Unlock()
	_, err := io.WriteString(tm.in, cmd+"\n")
	require.NoError(tm.t, err)
}

// expect waits for a line matching re after the last command sent.
func (tm *term) expect(re string) string {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		tm.out.mu.Lock()
		for _, l := range tm.out.all[tm.mark:] {
			if rx.MatchString(l) {
				tm.out.mu.Unlock()
				return l
			}
		}
		tm.out.mu.Unlock()
		select {
		case <-tm.out.changed:
		case <-deadline:
			tm.t.Fatalf("no line matching %q", re)
		}
	}
}

func tone(hz float64, d time.Duration) []int16 {
	out := make([]int16, int(d*wav.SampleRate/time.Second))
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/wav.SampleRate))
	}
	return out
}

func maxToneLevel(s []int16, hz float64) float64 {
	var best float64
	for i := 0; i+800 <= len(s); i += 400 {
		best = max(best, wav.ToneLevel(s[i:i+800], hz))
	}
	return best
}

func startServer(t *testing.T, users map[string]string) *sipserver.Server {
	srv, err := sipserver.New(sipserver.Options{Users: users, Listen: []string{"udp://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { srv.Close() })
	return srv
}

// startBot runs a bot (prompt: 400 ms of 600 Hz) registered as user.
func startBot(t *testing.T, srv *sipserver.Server, user string) chan botcore.Event {
	evs := make(chan botcore.Event, 100)
	b, err := botcore.New(botcore.Config{
		URI: srv.AOR(user), Server: srv.URI("udp").String(),
		Prompt:  tone(600, 400*time.Millisecond),
		RTP:     rtp.Config{IP: net.IPv4(127, 0, 0, 1)},
		OnEvent: func(e botcore.Event) { evs <- e },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return evs
}

func waitBot(t *testing.T, evs chan botcore.Event, kind botcore.EventKind) botcore.Event {
	t.Helper()
	for {
		select {
		case e := <-evs:
			if e.Kind == kind {
				return e
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v event from the bot", kind)
		}
	}
}

// TestSoftphoneCallsBot: the softphone registers, calls the bot, plays a
// WAV file (1200 Hz) and records what it hears: the bot's prompt (600 Hz)
// and then its own tone echoed. DTMF reaches the bot; hold, unhold and
// status work; the periodic status line shows the call's duration.
func TestSoftphoneCallsBot(t *testing.T) {
	srv := startServer(t, nil)
	bot := startBot(t, srv, "bot")
	dir := t.TempDir()
	play, rec := filepath.Join(dir, "play.wav"), filepath.Join(dir, "rec.wav")
	require.NoError(t, wav.WriteFile(play, tone(1200, 5*time.Second)))

	pcap := filepath.Join(dir, "sip.pcap")
	tm := startPhone(t, "-server", srv.Addr("udp").String(), "-domain", "sipua.test", "-user", "alice",
		"-media-ip", "127.0.0.1", "-play", play, "-record", rec, "-status-every", "300ms", "-trace", pcap)
	tm.expect(`^registered as sip:alice@sipua.test$`)
	tm.send("call bot")
	tm.expect(`^call 1: calling sip:bot@sipua.test$`)
	tm.expect(`^call 1: established with sip:bot@sipua.test$`)
	waitBot(t, bot, botcore.EventPromptDone)
	tm.send("dtmf 12#")
	tm.expect(`^call 1: dtmf 12# sent \(rtp\)$`)
	assert.Equal(t, "12#", waitBot(t, bot, botcore.EventDigits).Digits)
	tm.expect(`^call 1: outgoing sip:bot@sipua.test Established 0:0\d$`) // the periodic status
	time.Sleep(1500 * time.Millisecond)                                  // the echo plays (~200 ms round trip; margin for a loaded machine)
	tm.send("hold")
	tm.expect(`^call 1: on hold$`)
	tm.send("status")
	tm.expect(`^status: sip:alice@sipua.test Registered, 1 call\(s\)$`)
	tm.expect(`^call 1: outgoing sip:bot@sipua.test Established 0:0\d, on hold$`)
	tm.send("unhold")
	tm.expect(`^call 1: resumed$`)
	tm.send("hangup")
	tm.expect(`^call 1: ended: local BYE after 0:0\d$`)
	tm.expect(`^call 1: recorded \d\.\d s$`)
	tm.send("hangup")
	tm.expect(`^error: hangup: no such call in progress$`)
	tm.send("unregister")
	tm.expect(`^unregistered$`)
	assert.Empty(t, srv.Bindings("alice"))
	tm.send("register")
	tm.expect(`^registered as sip:alice@sipua.test$`)
	assert.Len(t, srv.Bindings("alice"), 1)
	tm.send("frobnicate")
	tm.expect(`^error: frobnicate: unknown command "frobnicate" \(type help\)$`)
	tm.send("quit")
	tm.expect(`^bye$`)
	assert.Equal(t, cli.ExitOK, <-tm.done)
	assert.NotContains(t, strings.Join(tm.out.all, "\n"), "disconnected")
	tm.done <- 0 // for the cleanup

	// The pcap trace holds the call's messages.
	raw, err := os.ReadFile(pcap)
	require.NoError(t, err)
	assert.Equal(t, []byte{0xd4, 0xc3, 0xb2, 0xa1}, raw[:4], "pcap magic")
	for _, m := range []string{"REGISTER sip:sipua.test", "INVITE sip:bot@sipua.test", "BYE sip:", "SIP/2.0 200 OK"} {
		assert.Contains(t, string(raw), m)
	}

	s, err := wav.ReadFile(rec)
	require.NoError(t, err)
	prompt, echo := maxToneLevel(s, 600), maxToneLevel(s, 1200)
	t.Logf("recorded %d samples: prompt level %.3f, echo level %.3f", len(s), prompt, echo)
	assert.Greater(t, prompt, 0.05, "the prompt is not in the recording")
	assert.Greater(t, echo, 0.05, "the echo is not in the recording")
}

// TestSoftphoneAnswersAndTransfers: carol (a UserAgent of ours) calls the
// softphone, which answers; MESSAGEs go both ways; the softphone
// transfers carol to the bot (blind), then, in a second call from carol,
// calls dave and transfers carol to dave (attended: carol's new call
// replaces the softphone's call with dave).
func TestSoftphoneAnswersAndTransfers(t *testing.T) {
	srv := startServer(t, nil)
	bot := startBot(t, srv, "bot")
	msgs := make(chan string, 4)
	carolCalls := make(chan *sip.Inviter, 4)
	carol := newUA(t, srv, "carol", sip.UserAgentDelegate{
		OnMessage: func(r *sip.IncomingRequest) { msgs <- string(r.Request.Body); _ = r.Accept(context.Background()) },
	})
	daveInvs := make(chan *sip.Invitation, 4)
	newUA(t, srv, "dave", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		_ = inv.Accept(context.Background(), sip.AcceptOptions{})
		daveInvs <- inv
	}})
	carolCall := func() *sip.Inviter {
		call, err := sip.NewInviter(carol, srv.AOR("alice"), sip.InviterOptions{})
		require.NoError(t, err)
		call.SetDelegate(sip.SessionDelegate{OnRefer: func(r *sip.Referral) {
			go func() {
				if c, err := r.Accept(context.Background(), sip.InviterOptions{}); err == nil {
					carolCalls <- c
				}
			}()
		}})
		return call
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	txt := filepath.Join(t.TempDir(), "sip.txt")
	tm := startPhone(t, "-server", srv.Addr("udp").String(), "-domain", "sipua.test", "-user", "alice", "-media-ip", "127.0.0.1",
		"-trace", txt)
	tm.expect(`^registered as`)
	log, err := os.ReadFile(txt)
	require.NoError(t, err)
	assert.Contains(t, string(log), "REGISTER sip:sipua.test SIP/2.0")
	tm.send("reject")
	tm.expect(`^error: reject: no incoming call to reject$`)

	// carol calls, the softphone answers.
	call := carolCall()
	errc := make(chan error, 1)
	go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
	tm.expect(`^call 1: incoming from sip:carol@sipua.test \(answer or reject\)$`)
	tm.send("answer")
	tm.expect(`^call 1: established with sip:carol@sipua.test$`)
	require.NoError(t, <-errc)

	// MESSAGE both ways.
	m, err := sip.NewMessager(carol, srv.AOR("alice"), []byte("hello alice"), "", sip.RequestOptions{})
	require.NoError(t, err)
	require.NoError(t, m.Message(ctx))
	tm.expect(`^message from sip:carol@sipua.test: hello alice$`)
	tm.send("message carol hi carol")
	tm.expect(`^message sent to sip:carol@sipua.test$`)
	assert.Equal(t, "hi carol", <-msgs)

	// Blind transfer of carol to the bot.
	tm.send("transfer bot")
	tm.expect(`^call 1: transfer to sip:bot@sipua.test accepted$`)
	tm.expect(`^call 1: transfer done$`)
	tm.expect(`^call 1: ended: local BYE`)
	assert.Contains(t, waitBot(t, bot, botcore.EventIncoming).From, "carol")
	toBot := <-carolCalls
	require.NoError(t, toBot.Bye(ctx))

	// Attended transfer: carol calls again, the softphone holds her, calls
	// dave and joins them.
	call = carolCall()
	go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
	tm.expect(`^call 2: incoming from sip:carol@sipua.test`)
	tm.send("answer 2")
	tm.expect(`^call 2: established`)
	require.NoError(t, <-errc)
	tm.send("hold")
	tm.expect(`^call 2: on hold$`)
	tm.send("atransfer")
	tm.expect(`^error: atransfer: needs two established calls`)
	tm.send("call dave")
	tm.expect(`^call 3: established with sip:dave@sipua.test$`)
	first := <-daveInvs
	tm.send("atransfer")
	tm.expect(`^call 2: transfer to the peer of call 3 accepted$`)
	tm.expect(`^call 3: ended: remote BYE`) // dave's call with us is replaced
	tm.expect(`^call 2: transfer done$`)
	tm.expect(`^call 2: ended: local BYE`)
	replacing := <-daveInvs
	require.NotNil(t, replacing.Replaces, "dave's second INVITE has no Replaces")
	assert.Equal(t, first.Session, replacing.Replaces)
	fromCarol := <-carolCalls
	assert.Equal(t, sip.SessionEstablished, fromCarol.State())
	require.NoError(t, fromCarol.Bye(ctx))
	tm.send("status")
	tm.expect(`^status: sip:alice@sipua.test Registered, 0 call\(s\)$`)
}

func newUA(t *testing.T, srv *sipserver.Server, user string, d sip.UserAgentDelegate) *sip.UserAgent {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: srv.AOR(user), Transport: sip.TransportOptions{Server: srv.URI("udp").String()},
		MediaFactory: rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}),
		Delegate:     d,
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

// TestSoftphoneErrors: wrong flags (2), a server that does not answer
// (3), a wrong password (4).
func TestSoftphoneErrors(t *testing.T) {
	code := func(args ...string) (int, string) {
		var out, errOut lines
		c := run(context.Background(), args, func(string) string { return "" }, strings.NewReader("quit\n"), &out, &errOut)
		return c, strings.Join(errOut.all, "\n") + errOut.partial
	}
	for _, args := range [][]string{
		{"-user", "alice"},
		{"-server", "pbx.test"},
		{"-server", "pbx.test", "-user", "alice", "-transport", "pigeon"},
		{"-server", "pbx.test", "-user", "alice", "-media", "fax"},
		{"-server", "pbx.test", "-user", "alice", "-play", "/no/such.wav"},
		{"-server", "pbx.test", "-user", "alice", "-record", "/no/such/dir/x.wav"},
		{"-server", "pbx.test", "-user", "alice", "extra"},
	} {
		c, msg := code(args...)
		assert.Equal(t, cli.ExitUsage, c, "%v: %s", args, msg)
		assert.NotEmpty(t, msg)
	}

	// UDP to a port where nothing answers: REGISTER times out.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	c, msg := code("-server", pc.LocalAddr().String(), "-user", "alice", "-timeout", "500ms")
	assert.Equal(t, cli.ExitUnreachable, c, msg)
	assert.Contains(t, msg, "server unreachable: no answer from sip:"+pc.LocalAddr().String()+" within 500ms")

	srv := startServer(t, map[string]string{"alice": "right"})
	c, msg = code("-server", srv.Addr("udp").String(), "-domain", "sipua.test", "-user", "alice", "-password", "wrong")
	assert.Equal(t, cli.ExitAuth, c, msg)
	assert.Contains(t, msg, "authentication failed: the server refused the credentials of sip:alice@sipua.test")
	c, msg = code("-server", srv.Addr("udp").String(), "-domain", "sipua.test", "-user", "alice", "-password", "right")
	assert.Equal(t, cli.ExitOK, c, msg)
}

// TestSoftphoneWebRTC: with -media webrtc over WebSocket the softphone
// calls a WebRTC bot and records the prompt and the echo of its tone.
func TestSoftphoneWebRTC(t *testing.T) {
	srv, err := sipserver.New(sipserver.Options{Listen: []string{"ws://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Close()
	evs := make(chan botcore.Event, 100)
	b, err := botcore.New(botcore.Config{
		URI: srv.AOR("bot"), Server: srv.WSURL(), Media: botcore.WebRTC,
		WebRTC:  webrtc.Config{LoopbackOnly: true},
		Prompt:  tone(600, 400*time.Millisecond),
		OnEvent: func(e botcore.Event) { evs <- e },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-b.Ready()

	dir := t.TempDir()
	play, rec := filepath.Join(dir, "play.wav"), filepath.Join(dir, "rec.wav")
	require.NoError(t, wav.WriteFile(play, tone(1400, 3*time.Second)))
	tm := startPhone(t, "-server", srv.WSURL(), "-domain", "sipua.test", "-user", "alice",
		"-media", "webrtc", "-media-ip", "127.0.0.1", "-play", play, "-record", rec)
	tm.expect(`^registered as`)
	tm.send("call bot")
	tm.expect(`^call 1: established with sip:bot@sipua.test$`)
	waitBot(t, evs, botcore.EventPromptDone)
	tm.send("dtmf 9#")
	tm.expect(`^call 1: dtmf 9# sent \(rtp\)$`)
	assert.Equal(t, "9#", waitBot(t, evs, botcore.EventDigits).Digits)
	time.Sleep(1500 * time.Millisecond) // the echo plays
	tm.send("hangup")
	tm.expect(`^call 1: recorded`)
	tm.send("quit") // before the server closes
	assert.Equal(t, cli.ExitOK, <-tm.done)
	tm.done <- 0 // for the cleanup
	assert.NotContains(t, strings.Join(tm.out.all, "\n"), "error")
	s, err := wav.ReadFile(rec)
	require.NoError(t, err)
	prompt, echo := maxToneLevel(s, 600), maxToneLevel(s, 1400)
	t.Logf("recorded %d samples: prompt level %.3f, echo level %.3f", len(s), prompt, echo)
	assert.Greater(t, prompt, 0.05)
	assert.Greater(t, echo, 0.05)
}

// TestSoftphoneInterrupted: a signal while connecting ends the program
// with 0, not with "server unreachable".
func TestSoftphoneInterrupted(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out, errOut lines
	c := run(ctx, []string{"-server", pc.LocalAddr().String(), "-user", "alice"}, func(string) string { return "" },
		strings.NewReader(""), &out, &errOut)
	assert.Equal(t, cli.ExitOK, c)
	assert.Contains(t, errOut.partial+strings.Join(errOut.all, "\n"), "interrupted while starting")
}
