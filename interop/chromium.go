package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// This file drives SIP.js 0.21.2 in headless Chromium with real WebRTC: a
// small HTTP server on 127.0.0.1 serves the page in web/ and SIP.js's ES
// modules from node/node_modules/sip.js/lib/, Chromium (Debian's package,
// started by PID in its own process group) loads it, and the test talks to
// the page over the Chrome DevTools Protocol with gorilla/websocket:
// commands are Runtime.evaluate calls of sipua.run({cmd, …}), events come
// back through a Runtime.addBinding binding as the same JSON objects the
// Node peers print (Event).

// chromiumFlags are the flags Chromium runs with (shared/README: they work
// on this kind of machine). Fake audio capture (a beep) answers
// getUserMedia without a prompt; loopback candidates are allowed and real
// addresses are not hidden behind mDNS names, so that the page can offer
// 127.0.0.1. --remote-debugging-port=0 lets Chromium pick the port, which it
// writes to DevToolsActivePort in the profile directory.
var chromiumFlags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--use-fake-device-for-media-stream",
	"--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection",
	"--disable-features=WebRtcHideLocalIpsWithMdns",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--no-first-run",
	"--no-default-browser-check",
	"--mute-audio",
	"--remote-debugging-address=127.0.0.1",
	"--remote-debugging-port=0",
}

// ChromiumBinary returns the Chromium executable: $SIPUA_CHROMIUM when set,
// else chromium or chromium-browser from PATH.
func ChromiumBinary() (string, error) {
	if p := os.Getenv("SIPUA_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	var err error
	for _, name := range []string{"chromium", "chromium-browser"} {
		var p string
		if p, err = exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", err
}

// Chromium is a headless Chromium started by StartChromium.
type Chromium struct {
	// Dir is its temporary profile directory (--user-data-dir).
	Dir string
	// Version is the browser's product string, e.g. "Chrome/156.0.8078.108".
	Version string

	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{} // closed when the process has exited
	cdp  *cdpConn
}

// StartChromium starts headless Chromium and connects to its DevTools
// endpoint; it is stopped by PID (and its process group) when the test
// ends. It fails the test, saying how to install it, when Chromium is
// missing.
func StartChromium(t testing.TB) *Chromium {
	t.Helper()
	bin, err := ChromiumBinary()
	if err != nil {
		t.Fatalf("chromium is not installed (%v): run interop/install.sh as root (scripts/test.sh does), "+
			"or apt-get install chromium; SIPUA_CHROMIUM may name another binary", err)
	}
	c := &Chromium{Dir: t.TempDir(), log: &lockedBuffer{}, done: make(chan struct{})}
	args := append(append([]string(nil), chromiumFlags...), "--user-data-dir="+c.Dir, "about:blank")
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = chromiumProcAttr()
	started := time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("chromium: start %s: %v", bin, err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.stop(t)
		if t.Failed() {
			t.Logf("--- chromium (pid %d) output:\n%s", c.cmd.Process.Pid, c.log.String())
		}
	})

	wsURL, err := c.devToolsURL(15 * time.Second)
	if err != nil {
		t.Fatalf("chromium (%s) did not open its DevTools endpoint: %v\n--- output:\n%s", bin, err, c.log.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.cdp, err = dialCDP(ctx, wsURL); err != nil {
		t.Fatalf("chromium: connect to %s: %v", wsURL, err)
	}
	var v struct {
		Product string `json:"product"`
	}
	if err := c.cdp.call(ctx, "", "Browser.getVersion", nil, &v); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	c.Version = v.Product
	t.Logf("chromium (pid %d, %s) up in %v", c.cmd.Process.Pid, c.Version, time.Since(started).Round(time.Millisecond))
	return c
}

// devToolsURL waits for DevToolsActivePort (port, then the browser
// target's path) and returns the browser's WebSocket URL.
func (c *Chromium) devToolsURL(limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile(filepath.Join(c.Dir, "DevToolsActivePort"))
		if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); err == nil && len(lines) == 2 {
			if _, err := strconv.Atoi(lines[0]); err == nil {
				return "ws://127.0.0.1:" + lines[0] + strings.TrimSpace(lines[1]), nil
			}
		}
		select {
		case <-c.done:
			return "", fmt.Errorf("chromium exited: %v", c.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no DevToolsActivePort after %v", limit)
		}
	}
}

// stop closes the browser over CDP, then sends SIGTERM to its PID and
// finally SIGKILL to its process group (renderer, GPU and utility
// processes share it).
func (c *Chromium) stop(t testing.TB) {
	pid := c.cmd.Process.Pid
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > time.Second {
			t.Logf("chromium (pid %d) took %v to stop", pid, d.Round(time.Millisecond))
		}
	}()
	if c.cdp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.cdp.call(ctx, "", "Browser.close", nil, nil)
		cancel()
	}
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
			t.Logf("chromium (pid %d) ignored SIGTERM; killing its process group", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-c.done
		}
	}
	// No child should outlive the browser process; make sure.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if c.cdp != nil {
		c.cdp.close()
	}
}

// Page is one tab of a Chromium, attached over CDP (flat session).
type Page struct {
	c         *Chromium
	targetID  string
	sessionID string
	log       *lockedBuffer // console messages, exceptions and browser log entries
}

// OpenPage opens a new tab, installs the bindings (each a global function
// of one string argument that calls onBinding), and navigates to pageURL.
// Console output and exceptions of the page are kept in its log.
func (c *Chromium) OpenPage(ctx context.Context, pageURL string, bindings []string, onBinding func(name, payload string)) (*Page, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := c.cdp.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.cdp.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &Page{c: c, targetID: created.TargetID, sessionID: attached.SessionID, log: &lockedBuffer{}}
	c.cdp.subscribe(p.sessionID, func(method string, params json.RawMessage) { p.event(method, params, onBinding) })
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if err := c.cdp.call(ctx, p.sessionID, m, nil, nil); err != nil {
			return nil, err
		}
	}
	for _, b := range bindings {
		if err := c.cdp.call(ctx, p.sessionID, "Runtime.addBinding", map[string]any{"name": b}, nil); err != nil {
			return nil, err
		}
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := c.cdp.call(ctx, p.sessionID, "Page.navigate", map[string]any{"url": pageURL}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("navigate to %s: %s", pageURL, nav.ErrorText)
	}
	return p, nil
}

// event handles one CDP event of the page's session (on the connection's
// reader goroutine: it must not block).
func (p *Page) event(method string, params json.RawMessage, onBinding func(name, payload string)) {
	switch method {
	case "Runtime.bindingCalled":
		var b struct {
			Name    string `json:"name"`
			Payload string `json:"payload"`
		}
		if json.Unmarshal(params, &b) == nil && onBinding != nil {
			onBinding(b.Name, b.Payload)
		}
	case "Runtime.consoleAPICalled":
		var m struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &m) != nil {
			return
		}
		parts := make([]string, 0, len(m.Args))
		for _, a := range m.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		fmt.Fprintf(p.log, "console.%s: %s\n", m.Type, strings.Join(parts, " "))
	case "Runtime.exceptionThrown":
		var e struct {
			Details cdpException `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) == nil {
			fmt.Fprintf(p.log, "exception: %s\n", e.Details)
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level string `json:"level"`
				Text  string `json:"text"`
				URL   string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) == nil {
			fmt.Fprintf(p.log, "log.%s: %s %s\n", e.Entry.Level, e.Entry.Text, e.Entry.URL)
		}
	}
}

// Evaluate runs expression in the page, waits for the promise it returns
// (if any) and stores the JSON value of the result in result (when not
// nil). A thrown exception or rejected promise is an error.
func (p *Page) Evaluate(ctx context.Context, expression string, result any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *cdpException `json:"exceptionDetails"`
	}
	err := p.c.cdp.call(ctx, p.sessionID, "Runtime.evaluate", map[string]any{
		"expression": expression, "awaitPromise": true, "returnByValue": true,
	}, &r)
	if err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return errors.New(r.ExceptionDetails.String())
	}
	if result != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, result)
	}
	return nil
}

// Log returns the page's console output, exceptions and log entries.
func (p *Page) Log() string { return p.log.String() }

// Call sends one CDP command to the page's session (e.g.
// "Emulation.setDeviceMetricsOverride") and stores its result in result
// when not nil.
func (p *Page) Call(ctx context.Context, method string, params, result any) error {
	return p.c.cdp.call(ctx, p.sessionID, method, params, result)
}

// Screenshot returns a PNG of the page's viewport (Page.captureScreenshot).
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
	}
	if err := p.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

type cdpException struct {
	Text      string `json:"text"`
	Exception struct {
		Description string `json:"description"`
	} `json:"exception"`
}

func (e cdpException) String() string {
	if e.Exception.Description != "" {
		return e.Exception.Description
	}
	return e.Text
}

// cdpConn is a connection to Chromium's DevTools WebSocket (the browser
// target; pages are reached through flat sessions). One goroutine reads:
// replies go to the waiting call, events to the session's subscriber.
type cdpConn struct {
	ws     *websocket.Conn
	wmu    sync.Mutex // serializes writes
	done   chan struct{}
	closed sync.Once

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	subs    map[string]func(method string, params json.RawMessage)
	err     error // why the reader stopped
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error,omitempty"`
}

func dialCDP(ctx context.Context, wsURL string) (*cdpConn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		return nil, err
	}
	c := &cdpConn{ws: ws, done: make(chan struct{}), pending: map[int64]chan cdpMessage{},
		subs: map[string]func(string, json.RawMessage){}}
	go c.read()
	return c, nil
}

func (c *cdpConn) read() {
	defer close(c.done)
	for {
		var m cdpMessage
		if err := c.ws.ReadJSON(&m); err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if m.ID != 0 {
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		sub := c.subs[m.SessionID]
		c.mu.Unlock()
		if sub != nil {
			sub(m.Method, m.Params)
		}
	}
}

// subscribe sets the handler of the events of one session ("" is the
// browser's own).
func (c *cdpConn) subscribe(sessionID string, f func(method string, params json.RawMessage)) {
	c.mu.Lock()
	c.subs[sessionID] = f
	c.mu.Unlock()
}

// call sends one command and waits for its reply, whose result is
// unmarshalled into result when not nil.
func (c *cdpConn) call(ctx context.Context, sessionID, method string, params, result any) error {
	msg := map[string]any{"method": method}
	if params != nil {
		msg["params"] = params
	}
	if sessionID != "" {
		msg["sessionId"] = sessionID
	}
	ch := make(chan cdpMessage, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("cdp %s: connection closed: %w", method, err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	msg["id"] = id

	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := c.ws.WriteJSON(msg)
	c.wmu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("cdp %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("cdp %s: connection closed", method)
		}
		if m.Error != nil {
			return fmt.Errorf("cdp %s: %s (%d) %s", method, m.Error.Message, m.Error.Code, m.Error.Data)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("cdp %s: %w", method, ctx.Err())
	}
}

// close closes the connection and waits for its reader to end.
func (c *cdpConn) close() {
	c.closed.Do(func() { _ = c.ws.Close() })
	<-c.done
}

// pageServer serves the page in web/ and SIP.js's modules on 127.0.0.1.
type pageServer struct {
	srv *http.Server
	url string // http://127.0.0.1:PORT
}

// startPageServer serves webDir at / and sipjsDir at /sipjs/ until the
// test ends. Module scripts must come with a JavaScript MIME type, which is
// set here rather than left to the system's MIME tables.
func startPageServer(t testing.TB, webDir, sipjsDir string) *pageServer {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/sipjs/", http.StripPrefix("/sipjs/", http.FileServer(http.Dir(sipjsDir))))
	mux.Handle("/", http.FileServer(http.Dir(webDir)))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch filepath.Ext(r.URL.Path) {
		case ".js", ".mjs":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		case ".html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("page server: %v", err)
	}
	s := &pageServer{srv: &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}, url: "http://" + l.Addr().String()}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// PageReadyTimeout bounds how long a page may take to load SIP.js (some
// 200 ES modules) and connect: a few seconds on an idle machine, over 15
// on a loaded 2-core one.
const PageReadyTimeout = 45 * time.Second

// BrowserPeerConfig configures StartBrowserPeer.
type BrowserPeerConfig struct {
	// User is the SIP user; its password is taken from Users unless
	// Password is set.
	User     string
	Password string
	// Server is the WebSocket URL; empty means the Kamailio's ws URL.
	Server string
	// Domain defaults to Domain.
	Domain string
}

// BrowserPeer is SIP.js 0.21.2 in a headless Chromium page with real
// WebRTC audio (web/sipjs-page.mjs): commands with Do, events with Expect
// and WaitEvent (as Peer), media statistics with Stats.
type BrowserPeer struct {
	// Name identifies the peer in messages, e.g. "chromium/eve".
	Name string
	// User is the page's SIP user.
	User string
	// Chromium is the browser the page runs in.
	Chromium *Chromium
	// Page is the page's tab.
	Page *Page

	events eventQueue
}

// StartBrowserPeer serves the SIP.js page, starts Chromium, opens the page
// and waits for its user agent to connect to the server ("ready"). The
// browser, the page and the server are stopped when the test ends. It
// fails the test, saying how to install them, when Chromium or the npm
// packages are missing.
func StartBrowserPeer(t testing.TB, k *Kamailio, cfg BrowserPeerConfig) *BrowserPeer {
	t.Helper()
	webDir, err := filepath.Abs("web")
	if err != nil {
		t.Fatal(err)
	}
	sipjsDir, err := filepath.Abs(filepath.Join("node", "node_modules", "sip.js", "lib"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sipjsDir, "index.js")); err != nil {
		t.Fatalf("npm package sip.js is not installed in interop/node/node_modules (%v): "+
			"run interop/install.sh (scripts/test.sh does)", err)
	}
	if cfg.Password == "" {
		cfg.Password = Users[cfg.User]
	}
	if cfg.Domain == "" {
		cfg.Domain = Domain
	}
	if cfg.Server == "" {
		if k == nil {
			t.Fatal("StartBrowserPeer: no Kamailio and no Server")
		}
		cfg.Server = k.WSURL()
	}
	srv := startPageServer(t, webDir, sipjsDir)
	b := &BrowserPeer{Name: "chromium/" + cfg.User, User: cfg.User}
	b.events.init(b.Name)
	b.Chromium = StartChromium(t)

	q := url.Values{"server": {cfg.Server}, "user": {cfg.User}, "password": {cfg.Password}, "domain": {cfg.Domain}}
	ctx, cancel := context.WithTimeout(context.Background(), PageReadyTimeout)
	defer cancel()
	opened := time.Now()
	b.Page, err = b.Chromium.OpenPage(ctx, srv.url+"/sipjs-page.html?"+q.Encode(), []string{"sipuaEvent"},
		func(_, payload string) { b.events.add(parseEvent(payload)) })
	if err != nil {
		t.Fatalf("%s: open page: %v\n--- chromium output:\n%s", b.Name, err, b.Chromium.log.String())
	}
	t.Cleanup(func() {
		// Unregister and end calls before the browser goes.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = b.Page.Evaluate(ctx, `sipua.run({cmd: "quit"})`, nil)
		b.events.close(errors.New("page closed"))
		if t.Failed() {
			t.Logf("--- %s events:\n%s", b.Name, b.EventLog())
			t.Logf("--- %s page log (console, SIP trace):\n%s", b.Name, b.Page.Log())
		}
	})
	ready, err := b.WaitEvent(ctx, "ready")
	if err != nil {
		t.Fatalf("%s did not start: %v\n--- page log:\n%s", b.Name, err, b.Page.Log())
	}
	t.Logf("%s: page ready (SIP.js loaded, WebSocket connected) in %v (%s ms after navigation started, %s ms after the script did)",
		b.Name, time.Since(opened).Round(time.Millisecond), ready.Get("sinceNavigation"), ready.Get("t"))
	return b
}

// Run runs one page command (see web/sipjs-page.mjs) and stores its result
// in result when not nil.
func (b *BrowserPeer) Run(ctx context.Context, cmd string, fields map[string]any, result any) error {
	m := map[string]any{"cmd": cmd}
	for k, v := range fields {
		m[k] = v
	}
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := b.Page.Evaluate(ctx, "sipua.run("+string(js)+")", result); err != nil {
		return fmt.Errorf("%s: %s: %w", b.Name, cmd, err)
	}
	return nil
}

// Do runs a command given as alternating member names and values, e.g.
// Do(t, "call", "target", "sip:carol@sipua.test"), and returns its result
// as a string ("" for none: call, answer and hangup return the call id).
// It fails the test when the command fails.
func (b *BrowserPeer) Do(t testing.TB, cmd string, kv ...any) string {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("Do(%s): odd number of arguments", cmd)
	}
	fields := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		fields[fmt.Sprint(kv[i])] = kv[i+1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultEventTimeout)
	defer cancel()
	var res any
	if err := b.Run(ctx, cmd, fields, &res); err != nil {
		t.Fatal(err)
	}
	if res == nil {
		return ""
	}
	return fmt.Sprint(res)
}

// BrowserStats summarize RTCPeerConnection.getStats() for one call of the
// page: the audio and video inbound-rtp and outbound-rtp counters (RTP
// payload bytes, frames), the transport's ICE and DTLS states and the
// selected pair.
type BrowserStats struct {
	Call               string `json:"call"`
	ICEConnectionState string `json:"iceConnectionState"` // RTCPeerConnection.iceConnectionState
	ConnectionState    string `json:"connectionState"`    // RTCPeerConnection.connectionState
	ICEState           string `json:"iceState"`           // transport stats
	DTLSState          string `json:"dtlsState"`          // transport stats
	CodecReceived      string `json:"codecReceived"`
	CodecSent          string `json:"codecSent"`
	PacketsReceived    uint64 `json:"packetsReceived"`
	BytesReceived      uint64 `json:"bytesReceived"`
	PacketsSent        uint64 `json:"packetsSent"`
	BytesSent          uint64 `json:"bytesSent"`
	LocalCandidate     string `json:"localCandidate"`  // "127.0.0.1:PORT/udp host"
	RemoteCandidate    string `json:"remoteCandidate"` // same, the other end's

	// Video: inbound-rtp and outbound-rtp of kind video.
	VideoCodecReceived   string `json:"videoCodecReceived"`
	VideoCodecSent       string `json:"videoCodecSent"`
	VideoPacketsReceived uint64 `json:"videoPacketsReceived"`
	VideoBytesReceived   uint64 `json:"videoBytesReceived"`
	FramesReceived       uint64 `json:"framesReceived"`
	FramesDecoded        uint64 `json:"framesDecoded"`
	KeyFramesDecoded     uint64 `json:"keyFramesDecoded"`
	FrameWidth           int    `json:"frameWidth"`
	FrameHeight          int    `json:"frameHeight"`
	VideoPLISent         uint64 `json:"videoPliSent"` // keyframe requests the browser sent
	VideoPacketsSent     uint64 `json:"videoPacketsSent"`
	FramesEncoded        uint64 `json:"framesEncoded"`
	VideoPLIReceived     uint64 `json:"videoPliReceived"` // keyframe requests the browser received
}

// Stats returns the media statistics of a call of the page.
func (b *BrowserPeer) Stats(t testing.TB, call string) BrowserStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s BrowserStats
	if err := b.Run(ctx, "stats", map[string]any{"call": call}, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// WaitEvent returns the earliest event called name that no earlier wait
// returned and that every match accepts (see Peer.WaitEvent).
func (b *BrowserPeer) WaitEvent(ctx context.Context, name string, match ...func(Event) bool) (Event, error) {
	return b.events.wait(ctx, name, match...)
}

// Expect waits up to DefaultEventTimeout for event name whose members
// equal the given key/value pairs and fails the test when it does not
// come (see Peer.Expect).
func (b *BrowserPeer) Expect(t testing.TB, name string, kv ...string) Event {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("Expect(%s): odd number of arguments", name)
	}
	var match []func(Event) bool
	for i := 0; i < len(kv); i += 2 {
		match = append(match, Field(kv[i], kv[i+1]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultEventTimeout)
	defer cancel()
	ev, err := b.WaitEvent(ctx, name, match...)
	if err != nil {
		t.Fatalf("%v %v", err, kv)
	}
	return ev
}

// EventLog returns the events received so far, one line each.
func (b *BrowserPeer) EventLog() string { return b.events.log() }

// parseEvent turns one JSON event object into an Event.
func parseEvent(line string) Event {
	ev := Event{Raw: line}
	if err := json.Unmarshal([]byte(line), &ev.Fields); err != nil {
		return Event{Name: "unparsable", Raw: line, Fields: map[string]any{"event": "unparsable", "line": line}}
	}
	ev.Name, _ = ev.Fields["event"].(string)
	return ev
}

// eventQueue holds a peer's events for WaitEvent, with Peer's semantics:
// each event is returned once, and an "error" event ends any other wait.
type eventQueue struct {
	name    string
	mu      sync.Mutex
	events  []Event
	taken   []bool
	changed chan struct{} // closed and replaced whenever events or closed change
	err     error         // set by close
}

func (q *eventQueue) init(name string) {
	q.name = name
	q.changed = make(chan struct{})
}

func (q *eventQueue) add(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.events = append(q.events, ev)
	q.taken = append(q.taken, false)
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *eventQueue) close(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
		close(q.changed)
		q.changed = make(chan struct{})
	}
}

func (q *eventQueue) wait(ctx context.Context, name string, match ...func(Event) bool) (Event, error) {
	for {
		q.mu.Lock()
		for i, ev := range q.events {
			if q.taken[i] {
				continue
			}
			if ev.Name == "error" && name != "error" {
				q.taken[i] = true
				q.mu.Unlock()
				return Event{}, fmt.Errorf("%s reported an error while waiting for %q: %s", q.name, name, ev.Raw)
			}
			if ev.Name != name || !matchAll(ev, match) {
				continue
			}
			q.taken[i] = true
			q.mu.Unlock()
			return ev, nil
		}
		changed, err := q.changed, q.err
		q.mu.Unlock()
		if err != nil {
			return Event{}, fmt.Errorf("%s: no event %q: %w", q.name, name, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("%s: no event %q: %w", q.name, name, ctx.Err())
		}
	}
}

func (q *eventQueue) log() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var b strings.Builder
	for _, e := range q.events {
		b.WriteString(e.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}
