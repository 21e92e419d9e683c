package botcore

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// tone returns d of a sine of hz.
func tone(hz float64, d time.Duration) []int16 {
	out := make([]int16, int(d*wav.SampleRate/time.Second))
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/wav.SampleRate))
	}
	return out
}

// events collects a bot's events.
type events struct {
	mu  sync.Mutex
	all []Event
	ch  chan struct{}
}

func newEvents() *events { return &events{ch: make(chan struct{}, 1)} }

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	default:
	}
}

// wait waits until f holds for the events, or fails the test.
func (e *events) wait(t *testing.T, what string, f func([]Event) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		ok := f(e.all)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.ch:
		case <-deadline:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("timed out waiting for %s; events:\n%v", what, e.all)
		}
	}
}

func (e *events) strings() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		out = append(out, ev.String())
	}
	return out
}

func count(evs []Event, k EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// recorder keeps what a caller receives.
type recorder struct {
	mu sync.Mutex
	s  []int16
}

func (r *recorder) add(p []int16) {
	r.mu.Lock()
	r.s = append(r.s, p...)
	r.mu.Unlock()
}

func (r *recorder) samples() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.s...)
}

// maxToneLevel returns the highest level of hz over 100 ms windows.
func maxToneLevel(s []int16, hz float64) float64 {
	var best float64
	for i := 0; i+800 <= len(s); i += 400 {
		best = max(best, wav.ToneLevel(s[i:i+800], hz))
	}
	return best
}

// heard waits until rec holds hz, or ctx ends.
func heard(ctx context.Context, rec *recorder, hz float64) bool {
	for {
		if maxToneLevel(rec.samples(), hz) > 0.05 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startServer starts an open registrar/proxy on loopback UDP and WS.
func startServer(t *testing.T) *sipserver.Server {
	srv, err := sipserver.New(sipserver.Options{Listen: []string{"udp://127.0.0.1:0", "ws://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { srv.Close() })
	return srv
}

// runBot runs a bot until the test ends and waits for it to be ready.
func runBot(t *testing.T, cfg Config) (*Bot, *events) {
	ev := newEvents()
	cfg.OnEvent = ev.add
	b, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatalf("bot did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("bot not ready")
	}
	return b, ev
}

// caller starts a UserAgent that calls with the given media factory.
func caller(t *testing.T, server string, user string, mf media.Factory) *sip.UserAgent {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:" + user + "@" + sipserver.DefaultDomain,
		Transport:    sip.TransportOptions{Server: server},
		MediaFactory: mf,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	return ua
}

// TestBotConcurrentCalls: three callers with plain RTP call the bot at
// once; each hears the prompt (a 600 Hz tone), sends its own DTMF digits,
// which the bot reports per call, and then hears its own tone echoed.
func TestBotConcurrentCalls(t *testing.T) {
	srv := startServer(t)
	server := srv.URI(transport.UDP).String()
	b, ev := runBot(t, Config{
		URI:    srv.AOR("bot"),
		Server: server,
		Prompt: tone(600, 400*time.Millisecond),
		RTP:    rtp.Config{IP: net.IPv4(127, 0, 0, 1)},
	})

	const n = 3
	var wg sync.WaitGroup
	results := make([]string, n)
	recs := make([]*recorder, n)
	for i := range n {
		hz := 1000 + 250*float64(i)
		rec := &recorder{}
		recs[i] = rec
		ua := caller(t, server, fmt.Sprintf("caller%d", i), rtp.NewFactory(rtp.Config{
			IP: net.IPv4(127, 0, 0, 1),
			Setup: func(h *rtp.Handler, _ media.SessionInfo) {
				h.SetAudioSource(rtp.Tone(hz))
				h.OnAudio(rec.add)
			},
		}))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			call, err := sip.NewInviter(ua, srv.AOR("bot"), sip.InviterOptions{})
			if err != nil {
				results[i] = err.Error()
				return
			}
			if err := call.Invite(ctx, sip.InviteOptions{}); err != nil {
				results[i] = "invite: " + err.Error()
				return
			}
			// The prompt plays, then the echo: wait until both are heard.
			if !heard(ctx, rec, 600) {
				results[i] = "no prompt heard"
				return
			}
			if err := call.SendDTMF(ctx, fmt.Sprintf("%d%d#", i+1, i+4), 0, sip.DTMFRTP); err != nil {
				results[i] = "dtmf: " + err.Error()
				return
			}
			// The tones are queued: hang up once the three are out.
			h := call.MediaHandler().(*rtp.Handler)
			for h.Stats().DTMFSent < 3 && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			if !heard(ctx, rec, hz) {
				results[i] = "no echo heard"
				return
			}
			if err := call.Bye(ctx); err != nil {
				results[i] = "bye: " + err.Error()
			}
		}()
	}
	ev.wait(t, "three calls in progress", func(evs []Event) bool { return count(evs, EventAnswered) == n })
	assert.Len(t, b.Calls(), n)
	wg.Wait()
	for i, r := range results {
		assert.Empty(t, r, "caller %d", i)
	}
	ev.wait(t, "three calls ended", func(evs []Event) bool { return count(evs, EventEnded) == n })
	assert.Empty(t, b.Calls())

	lines := ev.strings()
	t.Logf("bot events:\n%s", strings.Join(lines, "\n"))
	ev.mu.Lock()
	groups := map[string]bool{}
	for _, e := range ev.all {
		if e.Kind == EventDigits {
			groups[e.Digits] = true
			assert.Regexp(t, `^call \d: digits \d\d#$`, e.String())
		}
		if e.Kind == EventEnded {
			assert.Equal(t, sip.EndRemoteBye, e.Reason.Cause)
		}
	}
	ev.mu.Unlock()
	assert.Equal(t, map[string]bool{"14#": true, "25#": true, "36#": true}, groups)

	for i, rec := range recs {
		s := rec.samples()
		hz := 1000 + 250*float64(i)
		prompt, echo := maxToneLevel(s, 600), maxToneLevel(s, hz)
		t.Logf("caller %d: %d samples received, prompt level %.3f, echo of %.0f Hz level %.3f", i, len(s), prompt, hz, echo)
		assert.Greater(t, prompt, 0.05, "caller %d did not hear the prompt", i)
		assert.Greater(t, echo, 0.05, "caller %d did not hear its echo", i)
		// Each caller hears its own tone, not another's.
		other := 1000 + 250*float64((i+1)%n)
		assert.Less(t, maxToneLevel(s, other), 0.02, "caller %d hears caller %d", i, (i+1)%n)
	}
}

// TestBotBusyAndInfoDTMF: MaxCalls 1 refuses a second call with 486; the
// first sends DTMF by SIP INFO; the bot hangs up calls when it stops.
func TestBotBusyAndInfoDTMF(t *testing.T) {
	srv := startServer(t)
	server := srv.URI(transport.UDP).String()
	ev := newEvents()
	b, err := New(Config{
		URI: srv.AOR("bot"), Server: server, MaxCalls: 1, OnEvent: ev.add,
		RTP: rtp.Config{IP: net.IPv4(127, 0, 0, 1)},
	})
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-b.Ready()

	ua := caller(t, server, "alice", rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}))
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := sip.NewInviter(ua, srv.AOR("bot"), sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, first.Invite(cctx, sip.InviteOptions{}))
	second, err := sip.NewInviter(ua, srv.AOR("bot"), sip.InviterOptions{})
	require.NoError(t, err)
	err = second.Invite(cctx, sip.InviteOptions{})
	var re *sip.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 486, re.StatusCode)

	require.NoError(t, first.SendDTMF(cctx, "9*", 0, sip.DTMFInfo))
	ev.wait(t, "two digits", func(evs []Event) bool { return count(evs, EventDigit) == 2 })

	stop() // the bot hangs up
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the bot did not hang up")
	}
	assert.Equal(t, sip.EndRemoteBye, first.EndReason().Cause)
	require.NoError(t, <-done)
	ev.wait(t, "the digits left and the end", func(evs []Event) bool {
		return count(evs, EventDigits) == 1 && count(evs, EventEnded) == 1 && count(evs, EventUnregistered) == 1
	})
	lines := strings.Join(ev.strings(), "\n")
	assert.Contains(t, lines, "call 1: digits 9*")
	assert.Contains(t, lines, "busy: refused the call from sip:alice@sipua.test with 486")
}

// TestBotWebRTC: a caller with WebRTC media hears the prompt and its
// echo, and its RFC 4733 digits reach the bot.
func TestBotWebRTC(t *testing.T) {
	srv := startServer(t)
	_, ev := runBot(t, Config{
		URI:    srv.AOR("bot"),
		Server: srv.WSURL(),
		Media:  WebRTC,
		WebRTC: webrtc.Config{LoopbackOnly: true},
		Prompt: tone(600, 400*time.Millisecond),
	})
	rec := &recorder{}
	ua := caller(t, srv.WSURL(), "alice", webrtc.NewFactory(webrtc.Config{
		LoopbackOnly: true,
		Setup: func(h *webrtc.Handler, _ media.SessionInfo) {
			h.SetAudioSource(webrtc.Tone(1300))
			h.OnRTP(func(_ *pionTrack, p *pionPacket) {
				if p.PayloadType == 0 {
					pcm := make([]int16, len(p.Payload))
					for i, b := range p.Payload {
						pcm[i] = webrtc.DecodeMuLaw(b)
					}
					rec.add(pcm)
				}
			})
		},
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	call, err := sip.NewInviter(ua, srv.AOR("bot"), sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	ev.wait(t, "the prompt", func(evs []Event) bool { return count(evs, EventPromptDone) == 1 })
	require.NoError(t, call.SendDTMF(ctx, "42#", 0, sip.DTMFRTP))
	ev.wait(t, "the digits", func(evs []Event) bool { return count(evs, EventDigits) == 1 })
	require.True(t, heard(ctx, rec, 1300), "no echo heard")
	require.NoError(t, call.Bye(ctx))
	ev.wait(t, "the end", func(evs []Event) bool { return count(evs, EventEnded) == 1 })
	assert.Contains(t, strings.Join(ev.strings(), "\n"), "call 1: digits 42#")
	s := rec.samples()
	prompt, echo := maxToneLevel(s, 600), maxToneLevel(s, 1300)
	t.Logf("%d samples received, prompt level %.3f, echo level %.3f", len(s), prompt, echo)
	assert.Greater(t, prompt, 0.05)
	assert.Greater(t, echo, 0.05)
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{},
		{URI: "not a uri"},
		{URI: "sip:bot@x.test", Media: "carrier-pigeon"},
		{URI: "sip:bot@x.test", MaxCalls: -1},
		{URI: "sip:bot@x.test", EchoDelay: time.Hour},
	} {
		_, err := New(c)
		assert.ErrorIs(t, err, ErrConfig, "%+v", c)
	}
	assert.Len(t, DefaultPrompt(), wav.SampleRate/2)
}

type (
	pionTrack  = pion.TrackRemote
	pionPacket = pionrtp.Packet
)

// TestBotMaxCallDuration: the bot hangs up a call that lasts too long.
func TestBotMaxCallDuration(t *testing.T) {
	srv := startServer(t)
	server := srv.URI(transport.UDP).String()
	_, ev := runBot(t, Config{
		URI: srv.AOR("bot"), Server: server, MaxCallDuration: 300 * time.Millisecond,
		RTP: rtp.Config{IP: net.IPv4(127, 0, 0, 1)},
	})
	ua := caller(t, server, "alice", rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := sip.NewInviter(ua, srv.AOR("bot"), sip.InviterOptions{})
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the bot did not hang up")
	}
	assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	ev.wait(t, "the end", func(evs []Event) bool { return count(evs, EventEnded) == 1 })
}

// TestBotSeveralAccounts: the bot answers on three accounts from one
// Stack: all register through one socket, and each call's events name the
// account called.
func TestBotSeveralAccounts(t *testing.T) {
	srv := startServer(t)
	server := srv.URI(transport.UDP).String()
	_, ev := runBot(t, Config{
		URI: srv.AOR("bot"), Server: server,
		Accounts: []Account{{URI: srv.AOR("sales")}, {URI: srv.AOR("support")}},
		RTP:      rtp.Config{IP: net.IPv4(127, 0, 0, 1)},
	})
	flow := srv.Bindings("bot")[0].Flow
	for _, u := range []string{"sales", "support"} {
		b := srv.Bindings(u)
		require.Len(t, b, 1, u)
		assert.Equal(t, flow, b[0].Flow, "one socket for every account")
	}
	ua := caller(t, server, "alice", rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{"support", "sales"} {
		call, err := sip.NewInviter(ua, srv.AOR(u), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
		require.NoError(t, call.Bye(ctx))
	}
	ev.wait(t, "two calls ended", func(evs []Event) bool { return count(evs, EventEnded) == 2 })
	lines := strings.Join(ev.strings(), "\n")
	assert.Contains(t, lines, "call 1: incoming from sip:alice@sipua.test to "+srv.AOR("support"))
	assert.Contains(t, lines, "call 2: incoming from sip:alice@sipua.test to "+srv.AOR("sales"))
}
