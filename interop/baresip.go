package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// baresip 1.0.0 (Debian's baresip-core) as an interop peer: a desk-phone
// like user agent with plain RTP/AVP (PCMU, PCMA), driven over its ctrl_tcp
// module.
//
// The ctrl_tcp protocol, as baresip 1.0.0 speaks it (modules/ctrl_tcp):
//   - TCP, one connection at a time (a new connection replaces the old
//     one); every message in both directions is a netstring, "LEN:JSON,".
//   - Command: {"command":"dial","params":"sip:bob@sipua.test","token":"7"}.
//     command and params are joined with a space and run as a menu "long
//     command" (/dial, /hangup, /accept, /answermode, /uanew, /reginfo,
//     /callstat, /audio_debug, /quit, …; the menu module must be loaded).
//   - Response: {"response":true,"ok":true,"data":"…","token":"7"}; data is
//     the command's console output (with ANSI colour codes), ok false when
//     the command returned an error.
//   - Event: {"event":true,"type":"CALL_ESTABLISHED","class":"call",
//     "accountaor":"sip:alice@sipua.test","direction":"incoming",
//     "peeruri":"sip:bob@sipua.test","id":"<Call-ID>","param":"…"}. Types
//     seen here: REGISTERING, REGISTER_OK (param "200 OK"), REGISTER_FAIL
//     (param "401 Unauthorized"), UNREGISTERING, CALL_INCOMING (answermode
//     manual only; auto answers without it), CALL_RINGING (caller got
//     180), CALL_LOCAL_SDP / CALL_REMOTE_SDP (param offer or answer),
//     CALL_ESTABLISHED, CALL_RTPESTAB (param "audio": the first RTP packet
//     arrived), CALL_RTCP (with rtcp_stats), CALL_CLOSED (param
//     "Connection reset by user" after our hangup, "Connection reset by
//     peer" after the peer's BYE, or the SIP error), SHUTDOWN, EXIT.
//   - Events go only to a connected client: what happens before the test
//     connects is lost. Accounts in the accounts file send their first
//     REGISTER while baresip starts, before ctrl_tcp accepts, so their
//     REGISTER_OK may or may not reach the test: StartBaresip waits for
//     the registration with the reginfo command instead. An account
//     created with the uanew command reports REGISTERING and then
//     REGISTER_OK or REGISTER_FAIL.
//   - A refused incoming call (hangup in answermode manual) gets "486
//     Rejected"; dial appends the account's ";transport=udp" to the
//     Request-URI; the event id is the SIP Call-ID.

// BaresipAnswerMode is an account's answermode in baresip.
type BaresipAnswerMode string

// Answer modes of baresip 1.0.0.
const (
	// BaresipManual reports CALL_INCOMING and waits for the accept
	// command (or hangup to refuse).
	BaresipManual BaresipAnswerMode = "manual"
	// BaresipAuto answers every incoming call at once.
	BaresipAuto BaresipAnswerMode = "auto"
)

// BaresipConfig configures StartBaresip.
type BaresipConfig struct {
	// User is the SIP user in Domain (required); its password comes from
	// Users unless Password is set.
	User     string
	Password string
	// AnswerMode defaults to BaresipManual.
	AnswerMode BaresipAnswerMode
	// NoRegister keeps the account from registering (regint=0):
	// StartBaresip then does not wait for a registration. Calls still go
	// out through Kamailio (outbound proxy, digest on 407).
	NoRegister bool
	// Modules are loaded besides those of the template (e.g. "srtp",
	// "g722", "opus"); each must exist.
	Modules []string
	// MediaEnc is the account's mediaenc: "srtp" (SDES when the peer
	// takes it), "srtp-mand" (RTP/SAVP only), or empty for plain RTP.
	MediaEnc string
	// AudioCodecs is the account's audio_codecs list, full names such as
	// "G722/16000/1" or "opus/48000/2"; empty: every codec loaded.
	AudioCodecs string
	// Echo makes baresip send back the audio it receives (aubridge as
	// both player and source) instead of its 440 Hz sine: what comes back
	// proves baresip decrypted and decoded what it got.
	Echo bool
}

// Baresip is a running baresip started by StartBaresip, controlled over
// ctrl_tcp: Do runs a command, Expect waits for an event. Events are
// Event values whose Name is the baresip event type (REGISTER_OK,
// CALL_ESTABLISHED, …) and whose Fields hold the JSON members (class,
// type, accountaor, direction, peeruri, id, param, …).
type Baresip struct {
	// Name identifies the instance in messages, e.g. "baresip/alice".
	Name string
	// User is the account's SIP user; AOR its address of record.
	User, AOR string
	// SIPPort is baresip's UDP and TCP SIP port on 127.0.0.1 (SIPPort+1 is
	// its TLS listener); CtrlPort the ctrl_tcp port; RTP ports are taken
	// from RTPMin to RTPMax.
	SIPPort, CtrlPort, RTPMin, RTPMax uint16
	// Dir is the configuration directory (config, accounts).
	Dir string

	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{} // closed when the process has exited

	conn     net.Conn
	wmu      sync.Mutex // serialises writes on conn
	readDone chan struct{}

	mu      sync.Mutex
	events  []Event
	taken   []bool
	pending map[string]chan baresipResponse
	token   int
	changed chan struct{} // closed and replaced when events or state change
	closed  bool          // the ctrl connection is gone
	readErr error
}

type baresipResponse struct {
	OK   bool   `json:"ok"`
	Data string `json:"data"`
}

// baresipModuleDirs are where the packages put baresip's modules.
var baresipModuleDirs = []string{
	"/usr/lib/baresip/modules",
	"/usr/lib/x86_64-linux-gnu/baresip/modules",
	"/usr/local/lib/baresip/modules",
}

// baresipModules are the modules the configuration in baresip/ loads.
var baresipModules = []string{"g711", "aubridge", "ausine", "account", "menu", "ctrl_tcp"}

// baresipAccount returns an accounts-file line (also the argument of the
// uanew command) for user in Domain, registering with regint seconds (0:
// not at all) through k's UDP listener, with digest credentials.
func baresipAccount(k *Kamailio, user, password string, mode BaresipAnswerMode, regint int) string {
	return fmt.Sprintf(`<sip:%s@%s;transport=udp>;auth_user=%s;auth_pass=%s;`+
		`outbound="sip:127.0.0.1:%d;transport=udp";regint=%d;answermode=%s`,
		user, Domain, user, password, k.SIPPort, regint, mode)
}

// StartBaresip writes a baresip configuration for cfg.User into a
// temporary directory (config from baresip/config with this instance's
// ports; accounts with one account registering with k over UDP), starts
// `baresip -f DIR -s` (-s: SIP trace in its log) in its own process
// group, connects to its ctrl_tcp port and, unless cfg.NoRegister, waits
// until the account is registered. When the test ends it asks baresip to
// quit, then signals it by PID, and prints its log (with the SIP trace)
// and events if the test failed. It fails the test, saying why, when
// baresip or one of its modules is missing or when it does not come up.
func StartBaresip(t testing.TB, k *Kamailio, cfg BaresipConfig) *Baresip {
	t.Helper()
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Fatalf("baresip is not installed (%v): run interop/install.sh as root "+
			"(scripts/test.sh does), or apt-get install baresip-core", err)
	}
	modDir := ""
	for _, d := range baresipModuleDirs {
		if _, err := os.Stat(filepath.Join(d, "ctrl_tcp.so")); err == nil {
			modDir = d
			break
		}
	}
	if modDir == "" {
		t.Fatalf("baresip's modules (ctrl_tcp.so) are not in any of %v: reinstall baresip-core", baresipModuleDirs)
	}
	for _, m := range append(baresipModules[:len(baresipModules):len(baresipModules)], cfg.Modules...) {
		if _, err := os.Stat(filepath.Join(modDir, m+".so")); err != nil {
			t.Fatalf("baresip module %s.so is missing in %s (%v): reinstall baresip-core", m, modDir, err)
		}
	}
	if k == nil {
		t.Fatal("StartBaresip: no Kamailio")
	}
	if cfg.User == "" {
		t.Fatal("StartBaresip: no User")
	}
	if cfg.Password == "" {
		cfg.Password = Users[cfg.User]
	}
	if cfg.AnswerMode == "" {
		cfg.AnswerMode = BaresipManual
	}
	// SIP (and its TLS listener on the next port), ctrl_tcp, then RTP and
	// RTCP pairs for up to call_max_calls calls.
	base, err := freePortBlock(16)
	if err != nil {
		t.Fatalf("StartBaresip: %v", err)
	}
	b := &Baresip{
		Name:     "baresip/" + cfg.User,
		User:     cfg.User,
		AOR:      "sip:" + cfg.User + "@" + Domain,
		SIPPort:  base,
		CtrlPort: base + 2,
		RTPMin:   base + 4,
		RTPMax:   base + 15,
		Dir:      t.TempDir(),
		log:      &lockedBuffer{},
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
		pending:  map[string]chan baresipResponse{},
		changed:  make(chan struct{}),
	}
	tmpl, err := os.ReadFile(filepath.Join("baresip", "config"))
	if err != nil {
		t.Fatalf("baresip: template: %v", err)
	}
	conf := strings.NewReplacer(
		"@SIP_PORT@", strconv.Itoa(int(b.SIPPort)),
		"@CTRL_PORT@", strconv.Itoa(int(b.CtrlPort)),
		"@RTP_MIN@", strconv.Itoa(int(b.RTPMin)),
		"@RTP_MAX@", strconv.Itoa(int(b.RTPMax)),
		"@NAME@", "sipua-"+cfg.User,
		"/usr/lib/baresip/modules", modDir,
	).Replace(string(tmpl))
	for _, m := range cfg.Modules {
		conf += "module\t\t\t" + m + ".so\n"
	}
	if cfg.Echo {
		conf = regexp.MustCompile(`(?m)^audio_source\s.*$`).ReplaceAllString(conf, "audio_source\t\taubridge,sipua-"+cfg.User)
		// aubridge pairs a source and a player of the same format: the
		// codec's, not ausine's 48 kHz stereo.
		conf = regexp.MustCompile(`(?m)^ausrc_(srate|channels)\s.*$`).ReplaceAllString(conf, "")
	}
	regint := 600
	if cfg.NoRegister {
		regint = 0
	}
	account := baresipAccount(k, cfg.User, cfg.Password, cfg.AnswerMode, regint)
	if cfg.MediaEnc != "" {
		account += ";mediaenc=" + cfg.MediaEnc
	}
	if cfg.AudioCodecs != "" {
		account += ";audio_codecs=" + cfg.AudioCodecs
	}
	accounts := account + "\n"
	if err := os.WriteFile(filepath.Join(b.Dir, "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "accounts"), []byte(accounts), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "contacts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	// -t: baresip quits by itself after five minutes should this test
	// binary die without stopping it.
	b.cmd = exec.Command(bin, "-f", b.Dir, "-s", "-t", "300")
	b.cmd.Dir = b.Dir
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", b.Name, err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		b.stop(t)
		if t.Failed() {
			t.Logf("--- %s (pid %d, %s) ctrl_tcp events:\n%s", b.Name, b.cmd.Process.Pid, b.Dir, b.EventLog())
			t.Logf("--- %s log and SIP trace:\n%s", b.Name, b.Log())
		}
	})
	if err := b.connect(10 * time.Second); err != nil {
		t.Fatalf("%s did not come up: %v\n--- baresip log ---\n%s", b.Name, err, b.Log())
	}
	if !cfg.NoRegister {
		b.WaitRegistered(t, b.AOR)
	}
	return b
}

// connect dials the ctrl_tcp port until baresip accepts, then starts the
// reader.
func (b *Baresip) connect(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(b.CtrlPort)))
	for {
		select {
		case <-b.done:
			return fmt.Errorf("baresip exited: %v", b.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			b.conn = c
			go b.read()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ctrl_tcp on %s not answering after %v: %v", addr, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// read decodes netstrings from the ctrl_tcp connection until it closes:
// responses go to the command waiting for their token, events to the
// queue.
func (b *Baresip) read() {
	defer close(b.readDone)
	r := bufio.NewReader(b.conn)
	var err error
	for {
		var msg []byte
		if msg, err = readNetstring(r); err != nil {
			break
		}
		var fields map[string]any
		if err := json.Unmarshal(msg, &fields); err != nil {
			fields = map[string]any{"type": "unparsable", "line": string(msg)}
		}
		if isResp, _ := fields["response"].(bool); isResp {
			var resp baresipResponse
			_ = json.Unmarshal(msg, &resp)
			resp.Data = stripANSI(resp.Data)
			tok, _ := fields["token"].(string)
			b.mu.Lock()
			ch := b.pending[tok]
			delete(b.pending, tok)
			b.mu.Unlock()
			if ch != nil {
				ch <- resp // buffered
			}
			continue
		}
		ev := Event{Fields: fields, Raw: string(msg)}
		ev.Name, _ = fields["type"].(string)
		b.mu.Lock()
		b.events = append(b.events, ev)
		b.taken = append(b.taken, false)
		b.notifyLocked()
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.closed, b.readErr = true, err
	for tok, ch := range b.pending {
		close(ch)
		delete(b.pending, tok)
	}
	b.notifyLocked()
	b.mu.Unlock()
}

func (b *Baresip) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// maxNetstring bounds one ctrl_tcp message.
const maxNetstring = 1 << 20

// readNetstring reads one netstring ("LEN:DATA,") and returns DATA.
func readNetstring(r *bufio.Reader) ([]byte, error) {
	head, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[:len(head)-1]))
	if err != nil || n < 0 || n > maxNetstring {
		return nil, fmt.Errorf("ctrl_tcp: bad netstring length %q", head)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("ctrl_tcp: netstring of %d bytes not ended by ','", n)
	}
	return buf[:n], nil
}

// Command runs a ctrl_tcp command (params may be empty) and returns its
// output. It fails when baresip answers ok=false (the error carries the
// output), when the connection is gone, or when ctx ends first.
func (b *Baresip) Command(ctx context.Context, cmd, params string) (string, error) {
	m := map[string]string{"command": cmd}
	if params != "" {
		m["params"] = params
	}
	ch := make(chan baresipResponse, 1)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return "", fmt.Errorf("%s: %s: ctrl_tcp connection closed (%v)", b.Name, cmd, b.readErr)
	}
	b.token++
	tok := strconv.Itoa(b.token)
	b.pending[tok] = ch
	b.mu.Unlock()
	m["token"] = tok
	msg, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	b.wmu.Lock()
	_, err = fmt.Fprintf(b.conn, "%d:%s,", len(msg), msg)
	b.wmu.Unlock()
	if err != nil {
		return "", fmt.Errorf("%s: send %s: %w", b.Name, msg, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("%s: %s: ctrl_tcp connection closed before the response", b.Name, msg)
		}
		if !resp.OK {
			return resp.Data, fmt.Errorf("%s: %s failed: %q", b.Name, msg, resp.Data)
		}
		return resp.Data, nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, tok)
		b.mu.Unlock()
		return "", fmt.Errorf("%s: no response to %s: %w", b.Name, msg, ctx.Err())
	}
}

// Do runs a command, its parameters joined by spaces (e.g. Do(t, "dial",
// "sip:bob@sipua.test"), Do(t, "hangup")), and returns its output; it
// fails the test when the command fails or gets no response within
// DefaultEventTimeout.
func (b *Baresip) Do(t testing.TB, cmd string, params ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultEventTimeout)
	defer cancel()
	out, err := b.Command(ctx, cmd, strings.Join(params, " "))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitEvent returns the earliest event of type name that no earlier wait
// returned and that every match accepts, and marks it taken. It gives up
// when ctx ends or the ctrl_tcp connection closes (baresip exited).
func (b *Baresip) WaitEvent(ctx context.Context, name string, match ...func(Event) bool) (Event, error) {
	for {
		b.mu.Lock()
		for i, ev := range b.events {
			if b.taken[i] || ev.Name != name || !matchAll(ev, match) {
				continue
			}
			b.taken[i] = true
			b.mu.Unlock()
			return ev, nil
		}
		changed, closed, readErr := b.changed, b.closed, b.readErr
		b.mu.Unlock()
		if closed {
			return Event{}, fmt.Errorf("%s: ctrl_tcp closed (%v) without event %q", b.Name, readErr, name)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("%s: no event %q: %w", b.Name, name, ctx.Err())
		}
	}
}

// Expect waits up to DefaultEventTimeout for an event of type name whose
// members equal the given key/value pairs (e.g. Expect(t,
// "CALL_ESTABLISHED", "direction", "incoming")) and fails the test when it
// does not come.
func (b *Baresip) Expect(t testing.TB, name string, kv ...string) Event {
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

// regStatus matches a reginfo line: the AOR and OK, ERR or zzz (pending
// or not registered).
var regStatus = regexp.MustCompile(`(sip:\S+)\s+(OK|ERR|zzz)`)

// Registration returns the registration state reginfo shows for aor: "OK",
// "ERR", "zzz" (not, or not yet, registered) or "" when baresip has no such
// user agent.
func (b *Baresip) Registration(ctx context.Context, aor string) (string, error) {
	out, err := b.Command(ctx, "reginfo", "")
	if err != nil {
		return "", err
	}
	for _, m := range regStatus.FindAllStringSubmatch(out, -1) {
		if m[1] == aor {
			return m[2], nil
		}
	}
	return "", nil
}

// WaitRegistered polls reginfo until aor is registered and fails the test
// when its registration fails or takes more than DefaultEventTimeout.
func (b *Baresip) WaitRegistered(t testing.TB, aor string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultEventTimeout)
	defer cancel()
	for {
		st, err := b.Registration(ctx, aor)
		if err != nil {
			t.Fatalf("%s: waiting for the registration of %s: %v", b.Name, aor, err)
		}
		switch st {
		case "OK":
			return
		case "ERR":
			t.Fatalf("%s: registration of %s failed", b.Name, aor)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s not registered after %v (state %q)", b.Name, aor, DefaultEventTimeout, st)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// audioTX and audioRX pick the RTP packet counts out of audio_debug: the
// packets our RTCP session sent, and those received from each remote
// source.
var (
	audioTX = regexp.MustCompile(`TX: packets=(\d+)`)
	audioRX = regexp.MustCompile(`rcvd=(\d+)`)
)

// AudioPackets returns the RTP packets the current call's audio stream has
// sent and received so far (from the audio_debug command).
func (b *Baresip) AudioPackets(ctx context.Context) (sent, received int, err error) {
	out, err := b.Command(ctx, "audio_debug", "")
	if err != nil {
		return 0, 0, err
	}
	m := audioTX.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("%s: no audio stream in audio_debug:\n%s", b.Name, out)
	}
	sent, _ = strconv.Atoi(m[1])
	for _, m := range audioRX.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		received += n
	}
	return sent, received, nil
}

// Signal sends sig to the baresip process, by PID (SIGSTOP freezes it as
// a crashed or unplugged phone; SIGCONT resumes it).
func (b *Baresip) Signal(sig syscall.Signal) error { return syscall.Kill(b.cmd.Process.Pid, sig) }

// Events returns a copy of the ctrl_tcp events received so far.
func (b *Baresip) Events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.events...)
}

// EventLog returns the events received so far, one JSON object a line.
func (b *Baresip) EventLog() string {
	var s strings.Builder
	for _, e := range b.Events() {
		s.WriteString(e.Raw)
		s.WriteByte('\n')
	}
	return s.String()
}

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// stripANSI removes terminal colour codes and carriage returns.
func stripANSI(s string) string {
	return strings.ReplaceAll(ansiEscape.ReplaceAllString(s, ""), "\r", "")
}

// Log returns what baresip has printed so far, SIP trace included, without
// its terminal colour codes and carriage returns.
func (b *Baresip) Log() string { return stripANSI(b.log.String()) }

// BaresipSIPMessage is one SIP message of baresip's trace (-s): its start
// line and headers; the body is left out.
type BaresipSIPMessage struct {
	// Sent is true for a message baresip sent, false for one it received.
	Sent bool
	// Proto is UDP, TCP or TLS; Src and Dst are host:port.
	Proto, Src, Dst string
	// StartLine is the request or status line.
	StartLine string
	// Headers are the header lines as printed.
	Headers []string
	// Body is the message body (Content-Length bytes, lines joined with
	// CRLF).
	Body string
}

// Header returns the value of the first header called name (case
// insensitive), or "".
func (m BaresipSIPMessage) Header(name string) string {
	for _, h := range m.Headers {
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (m BaresipSIPMessage) String() string {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	return fmt.Sprintf("%s %s %s -> %s: %s", dir, m.Proto, m.Src, m.Dst, m.StartLine)
}

// traceHead is the line after the "#" that starts each message in
// baresip's SIP trace.
var traceHead = regexp.MustCompile(`^(UDP|TCP|TLS|WS|WSS) (\S+) -> (\S+)$`)

// SIPTrace returns the SIP messages baresip has sent and received so far,
// in order, parsed from the trace in its log (a "#" line, "PROTO SRC ->
// DST", then the message).
func (b *Baresip) SIPTrace() []BaresipSIPMessage {
	lines := strings.Split(b.Log(), "\n")
	self := "127.0.0.1:" + strconv.Itoa(int(b.SIPPort))
	var out []BaresipSIPMessage
	for i := 0; i+2 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "#" {
			continue
		}
		h := traceHead.FindStringSubmatch(lines[i+1])
		if h == nil {
			continue
		}
		m := BaresipSIPMessage{Proto: h[1], Src: h[2], Dst: h[3], Sent: h[2] == self, StartLine: lines[i+2]}
		j := i + 3
		for ; j < len(lines) && lines[j] != ""; j++ {
			m.Headers = append(m.Headers, lines[j])
		}
		n, _ := strconv.Atoi(m.Header("Content-Length"))
		var body strings.Builder
		for j++; j < len(lines) && body.Len() < n; j++ {
			body.WriteString(lines[j])
			body.WriteString("\r\n")
		}
		m.Body = body.String()
		out = append(out, m)
		i = j
	}
	return out
}

// stop asks baresip to quit over ctrl_tcp (it ends its calls and
// unregisters), then sends SIGTERM and finally SIGKILL to its process
// group, by PID, and closes the ctrl_tcp connection.
func (b *Baresip) stop(t testing.TB) {
	pid := b.cmd.Process.Pid
	defer func() {
		if b.conn != nil {
			b.conn.Close()
			<-b.readDone
		}
	}()
	if b.conn != nil {
		select {
		case <-b.done:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = b.Command(ctx, "quit", "")
			cancel()
		}
	}
	select {
	case <-b.done:
		return
	case <-time.After(3 * time.Second):
	}
	t.Logf("%s (pid %d) did not quit; sending SIGTERM", b.Name, pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-b.done:
		return
	case <-time.After(2 * time.Second):
	}
	t.Logf("%s (pid %d) ignored SIGTERM; killing its process group", b.Name, pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-b.done
}

// freePortBlock returns the first of n consecutive ports, starting at an
// even port, that are all free on 127.0.0.1 for TCP and UDP (see portLow
// and portHigh for why the range).
func freePortBlock(n int) (uint16, error) {
	for tries := 0; tries < 200; tries++ {
		base := portLow + 2*mrand.IntN((portHigh-portLow-n)/2)
		ok := true
		for p := base; p < base+n && ok; p++ {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			u, err := net.ListenPacket("udp", addr)
			l.Close()
			if err != nil {
				ok = false
				break
			}
			u.Close()
		}
		if ok {
			return uint16(base), nil
		}
	}
	return 0, errors.New("no block of free ports")
}
