package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sipua/sip/interop"
	"github.com/sipua/sip/trace"
)

// TestMain checks that the program leaves no goroutine behind once
// closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWebphone runs the program as `go run ./examples/webphone` does (on
// free ports), opens its page in headless Chromium (real WebRTC, the fake
// microphone's beep) and uses it as a person would, by clicking its
// buttons: Register, Call (the bot answers after ringing), the keypad
// (1, 2, 3 as RFC 4733 events, # as SIP INFO: the bot must hear them
// all), then Hang up. In between, audio must flow both ways (the bot's
// prompt and echo to the page, the microphone to the bot) and the page
// must show the bot's view. SIPUA_SCREENSHOT=1 writes the page in the
// call to screenshot.png.
//
// The second run does the same with Kamailio (interop's configuration:
// digest authentication, record-routing, the strict route-set check) as
// the registrar and proxy, as -server runs it; the bot is carol and the
// page eve, users Kamailio knows. One browser serves both runs.
func TestWebphone(t *testing.T) {
	browser := interop.StartChromium(t)
	t.Run("embedded-registrar", func(t *testing.T) {
		testWebphone(t, browser, config{}, os.Getenv("SIPUA_SCREENSHOT") == "1")
	})
	t.Run("kamailio", func(t *testing.T) {
		t.Chdir("../../interop") // StartKamailio reads its configuration there
		k := interop.StartKamailio(t)
		testWebphone(t, browser, config{
			Server: k.WSURL(), Domain: interop.Domain,
			BotUser: "carol", BotPassword: interop.Users["carol"],
			WebUser: "eve", WebPassword: interop.Users["eve"],
		}, false)
		assert.Empty(t, k.RouteSetViolations(), "in-dialog requests that ignored the route set")
	})
}

func testWebphone(t *testing.T, browser *interop.Chromium, cfg config, screenshot bool) {
	testStart := time.Now()
	var logs syncBuffer
	cfg.HTTP = "127.0.0.1:0"
	rec := trace.NewRecorder(0)
	cfg.Tracer = rec
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		a.Close()
		if t.Failed() {
			t.Logf("--- webphone log:\n%s", logs.String())
		}
	})
	t.Logf("page %s, SIP over %s", a.URL, a.WSURL)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ev := &events{changed: make(chan struct{})}
	page, err := browser.OpenPage(ctx, a.URL, []string{"webphoneEvent"}, func(_, payload string) { ev.add(payload) })
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- page events:\n%s\n--- page log:\n%s", ev.log(), page.Log())
		}
	})
	require.NoError(t, page.Call(ctx, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 700, "height": 780, "deviceScaleFactor": 1, "mobile": false}, nil))
	click := func(id string) {
		t.Helper()
		var ok bool
		require.NoError(t, page.Evaluate(ctx, fmt.Sprintf(`(() => { const b = document.getElementById(%q); if (!b || b.disabled) return false; b.click(); return true; })()`, id), &ok))
		require.True(t, ok, "button #%s is missing or disabled", id)
	}
	text := func(id string) string {
		t.Helper()
		var s string
		require.NoError(t, page.Evaluate(ctx, fmt.Sprintf(`document.getElementById(%q).textContent`, id), &s))
		return s
	}

	ev.expectWithin(t, interop.PageReadyTimeout, "ready")
	t.Logf("page ready %v after the test started", time.Since(testStart).Round(time.Millisecond))
	click("register")
	ev.expect(t, "registered")

	callStart := time.Now()
	click("call")
	ev.expect(t, "progress", "code", 180.0)
	ev.expect(t, "state", "state", "Established")
	t.Logf("call established %v after the click", time.Since(callStart).Round(time.Millisecond))

	// DTMF from the keypad reaches the bot: 1, 2, 3 as RFC 4733 events in
	// the media (the call negotiated telephone-event), # as SIP INFO.
	for _, k := range []string{"1", "2", "3"} {
		click("key-" + k)
		e := ev.expect(t, "dtmf")
		assert.Equal(t, "rfc4733", e["method"], "the call negotiated telephone-event: DTMF goes in the media")
	}
	waitFor(t, 10*time.Second, "the bot hears 123", func() bool {
		c := lastCall(a)
		return c != nil && c.Digits == "123"
	})
	click("dtmf-info")
	click("key-hash")
	assert.Equal(t, "info", ev.expect(t, "dtmf")["method"])
	waitFor(t, 10*time.Second, "the bot hears 123#", func() bool {
		c := lastCall(a)
		return c != nil && c.Digits == "123#"
	})

	// Audio both ways: the page receives the bot's prompt and echo, the
	// bot the page's microphone; the echo has run for a while.
	var pm struct {
		PacketsSent, PacketsReceived        int
		ICE, DTLS, CodecSent, CodecReceived string
	}
	waitFor(t, 15*time.Second, "audio both ways and the echo running", func() bool {
		require.NoError(t, page.Evaluate(ctx, `webphone.media()`, &pm))
		c := lastCall(a)
		return pm.PacketsReceived > 100 && pm.PacketsSent > 100 && c.PacketsReceived > 100 && c.PacketsSent > 100 && c.Echoing
	})
	c := lastCall(a)
	t.Logf("page: ICE %s, DTLS %s, sent %d packets (%s), received %d (%s)", pm.ICE, pm.DTLS, pm.PacketsSent, pm.CodecSent, pm.PacketsReceived, pm.CodecReceived)
	t.Logf("bot:  ICE %s, %s, received %d packets, sent %d, echoing %v, digits %q", c.ICE, c.Codec, c.PacketsReceived, c.PacketsSent, c.Echoing, c.Digits)
	assert.Equal(t, "connected", pm.DTLS)
	assert.Equal(t, "PCMU", pm.CodecReceived, "the bot sends G.711 µ-law")
	assert.Equal(t, "PCMU", c.Codec, "the bot receives G.711 µ-law")

	// The page shows the call and the bot's view of it.
	waitFor(t, 5*time.Second, "the page shows the digits the bot heard", func() bool { return text("b-digits") == "123#" })
	assert.Equal(t, "in call", text("callstate"))
	assert.Equal(t, "123#", text("digits"))
	shot, err := page.Screenshot(ctx)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err, "the screenshot is not a PNG")
	t.Logf("screenshot: %v, %d bytes", img.Bounds().Size(), len(shot))
	if screenshot {
		require.NoError(t, os.WriteFile("screenshot.png", shot, 0o644))
	}

	t.Logf("audio checked %v after the test started", time.Since(testStart).Round(time.Millisecond))
	click("hangup")
	ev.expect(t, "state", "state", "Terminated")
	waitFor(t, 5*time.Second, "the bot's call ends by the page's BYE", func() bool { return lastCall(a).Ended != "" })
	assert.Equal(t, "remote BYE", lastCall(a).Ended)
	assert.Equal(t, "ended", text("callstate"))

	// A call to a user who does not exist fails, and the page says why.
	require.NoError(t, page.Evaluate(ctx, `document.getElementById("target").value = "sip:nobody@`+a.cfg.Domain+`"`, nil))
	click("call")
	rej := ev.expect(t, "rejected")
	ev.expect(t, "state", "state", "Terminated")
	code, _ := rej["code"].(float64)
	assert.GreaterOrEqual(t, code, 400.0, "a call to nobody: %v", rej)
	assert.Contains(t, text("callstate"), fmt.Sprint(code))
	t.Logf("a call to nobody: %v %v", rej["code"], rej["reason"])

	// The bot's Tracer saw the whole call.
	var flow []string
	for _, e := range rec.Events() {
		if strings.HasPrefix(e.Summary(), "INVITE") || strings.HasPrefix(e.Summary(), "BYE") || strings.HasPrefix(e.Summary(), "INFO") {
			flow = append(flow, e.Dir.String()+" "+strings.Fields(e.Summary())[0])
		}
	}
	assert.Subset(t, flow, []string{"received INVITE", "received INFO", "received BYE"}, "the bot's trace: %v", flow)
}

// TestFlags: bad command lines are refused with a clear error.
func TestFlags(t *testing.T) {
	var out bytes.Buffer
	var usage usageError
	err := run([]string{"extra"}, &out, &out)
	require.ErrorContains(t, err, "unexpected arguments")
	require.ErrorAs(t, err, &usage)
	err = run([]string{"-nosuchflag"}, &out, &out)
	require.ErrorContains(t, err, "nosuchflag")
	require.ErrorAs(t, err, &usage)
	_, err = start(context.Background(), config{SIPJS: t.TempDir()})
	require.ErrorIs(t, err, errNoSIPJS)

	// A server where nobody listens: start gives up when its context ends.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = start(ctx, config{HTTP: "127.0.0.1:0", Server: "ws://" + addr + "/"})
	require.ErrorContains(t, err, "bot")
	t.Logf("unreachable server: %v", err)
}

func lastCall(a *app) *callStatus {
	calls := a.bot.Calls()
	if len(calls) == 0 {
		return nil
	}
	return &calls[len(calls)-1]
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events holds the page's events (JSON objects from webphoneEvent) for
// expect; each is returned once.
type events struct {
	mu      sync.Mutex
	list    []map[string]any
	raw     []string
	taken   []bool
	changed chan struct{}
}

func (e *events) add(payload string) {
	var m map[string]any
	if json.Unmarshal([]byte(payload), &m) != nil {
		m = map[string]any{"event": "unparsable"}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list, e.raw, e.taken = append(e.list, m), append(e.raw, payload), append(e.taken, false)
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *events) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.raw, "\n")
}

// expect waits up to 15 s for the next event called name whose members
// equal the given pairs; an "error" event fails the test at once.
func (e *events) expect(t *testing.T, name string, kv ...any) map[string]any {
	t.Helper()
	return e.expectWithin(t, 15*time.Second, name, kv...)
}

// expectWithin is expect with another time limit.
func (e *events) expectWithin(t *testing.T, limit time.Duration, name string, kv ...any) map[string]any {
	t.Helper()
	deadline := time.After(limit)
	for {
		e.mu.Lock()
	scan:
		for i, m := range e.list {
			if e.taken[i] {
				continue
			}
			if m["event"] == "error" {
				e.taken[i] = true
				e.mu.Unlock()
				t.Fatalf("the page reported an error while we waited for %q: %s", name, e.raw[i])
			}
			if m["event"] != name {
				continue
			}
			for j := 0; j+1 < len(kv); j += 2 {
				if m[kv[j].(string)] != kv[j+1] {
					continue scan
				}
			}
			e.taken[i] = true
			e.mu.Unlock()
			return m
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no page event %q %v within %v", name, kv, limit)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes (the logger's).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
