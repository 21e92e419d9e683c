package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PeerKind selects a peer driver in node/.
type PeerKind string

// The Node peer drivers (see node/README.md for their protocol).
const (
	// SIPJS is SIP.js 0.21.2 (node/sipjs-peer.mjs).
	SIPJS PeerKind = "sipjs"
	// JsSIP is JsSIP 3.13.8 (node/jssip-peer.mjs).
	JsSIP PeerKind = "jssip"
)

// script returns the driver's file name in node/.
func (k PeerKind) script() string {
	switch k {
	case SIPJS:
		return "sipjs-peer.mjs"
	case JsSIP:
		return "jssip-peer.mjs"
	}
	return ""
}

// DefaultEventTimeout bounds Peer.Expect.
const DefaultEventTimeout = 10 * time.Second

// Event is one line a peer driver printed on stdout: a JSON object whose
// "event" member names it.
type Event struct {
	// Name is the "event" member, e.g. "registered" or "accepted".
	Name string
	// Fields holds every member of the object, Name's included.
	Fields map[string]any
	// Raw is the line as printed.
	Raw string
}

// Get returns the member key as a string ("" when absent); numbers are
// formatted without a fraction when they have none.
func (e Event) Get(key string) string {
	v, ok := e.Fields[key]
	if !ok || v == nil {
		return ""
	}
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func (e Event) String() string { return e.Raw }

// PeerConfig configures StartPeer.
type PeerConfig struct {
	// Kind is the driver; required.
	Kind PeerKind
	// User is the SIP user; its password is taken from Users unless
	// Password is set.
	User     string
	Password string
	// Server is the WebSocket URL; empty means the Kamailio's ws URL.
	Server string
	// Domain defaults to Domain.
	Domain string
	// Display is the display name (optional).
	Display string
	// NoFollowRefer makes the peer accept a REFER (202) without calling
	// the Refer-To target.
	NoFollowRefer bool
	// SessionTimers, if not zero, turns on the peer's session timers
	// (RFC 4028) with this interval in seconds (JsSIP only; at least 60).
	SessionTimers int
}

// Peer is a running peer driver: a Node process controlled with JSON
// commands on its stdin, reporting JSON events on its stdout. Its stderr
// (the library's log and SIP trace) is kept and printed when the test
// fails.
type Peer struct {
	// Name identifies the peer in messages, e.g. "sipjs/alice".
	Name string
	// User is the peer's SIP user (in Domain unless configured otherwise).
	User string
	// Dir is the peer's temporary working directory.
	Dir string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *lockedBuffer
	done  chan struct{} // closed when the process has exited and its output is read

	mu      sync.Mutex
	events  []Event
	taken   []bool
	changed chan struct{} // closed and replaced whenever events or exit change
	exitErr error
	exited  bool
}

// StartPeer starts a peer driver under Node and stops it when the test
// ends (a "quit" command, then SIGTERM and SIGKILL by PID). It fails the
// test, saying why, when Node or the npm packages are missing or when the
// peer does not report "ready" within ten seconds.
func StartPeer(t testing.TB, k *Kamailio, cfg PeerConfig) *Peer {
	t.Helper()
	script := cfg.Kind.script()
	if script == "" {
		t.Fatalf("StartPeer: unknown peer kind %q", cfg.Kind)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (%v): the %s peer needs Node 20 or later in PATH "+
			"(interop/install.sh installs Debian's nodejs when it is missing)", err, cfg.Kind)
	}
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"sip.js", "jssip", "ws"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("npm package %s is not installed in interop/node/node_modules (%v): "+
				"run interop/install.sh (scripts/test.sh does)", pkg, err)
		}
	}
	if cfg.Password == "" {
		cfg.Password = Users[cfg.User]
	}
	if cfg.Domain == "" {
		cfg.Domain = Domain
	}
	if cfg.Server == "" {
		if k == nil {
			t.Fatal("StartPeer: no Kamailio and no Server")
		}
		cfg.Server = k.WSURL()
	}
	rtp, err := freePorts(1)
	if err != nil {
		t.Fatalf("StartPeer: %v", err)
	}
	args := []string{filepath.Join(nodeDir, script),
		"--server", cfg.Server, "--user", cfg.User, "--password", cfg.Password,
		"--domain", cfg.Domain, "--rtp-port", strconv.Itoa(int(rtp[0]))}
	if cfg.Display != "" {
		args = append(args, "--display", cfg.Display)
	}
	if cfg.NoFollowRefer {
		args = append(args, "--no-follow-refer")
	}
	if cfg.SessionTimers != 0 {
		args = append(args, "--session-timers", strconv.Itoa(cfg.SessionTimers))
	}

	p := &Peer{
		Name:    string(cfg.Kind) + "/" + cfg.User,
		User:    cfg.User,
		Dir:     t.TempDir(),
		log:     &lockedBuffer{},
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	p.cmd = exec.Command(node, args...)
	p.cmd.Dir = p.Dir
	p.cmd.Env = append(os.Environ(), "NO_COLOR=1", "DEBUG_COLORS=0")
	p.cmd.Stderr = p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: start node: %v", p.Name, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- %s (pid %d) events:\n%s", p.Name, p.cmd.Process.Pid, p.EventLog())
			t.Logf("--- %s log and SIP trace (stderr):\n%s", p.Name, p.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.WaitEvent(ctx, "ready"); err != nil {
		t.Fatalf("%s did not start: %v", p.Name, err)
	}
	return p
}

// read collects the events printed on stdout until the process closes it,
// then waits for the process.
func (p *Peer) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		ev := Event{Raw: line}
		if err := json.Unmarshal([]byte(line), &ev.Fields); err != nil {
			ev = Event{Name: "unparsable", Raw: line, Fields: map[string]any{"event": "unparsable", "line": line}}
		} else {
			ev.Name, _ = ev.Fields["event"].(string)
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.taken = append(p.taken, false)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exited, p.exitErr = true, err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.done)
}

// Send writes one command to the peer: cmd plus the given members.
func (p *Peer) Send(cmd string, fields map[string]any) error {
	m := map[string]any{"cmd": cmd}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: send %s: %w", p.Name, b, err)
	}
	return nil
}

// Do sends a command given as alternating member names and values, e.g.
// Do(t, "call", "target", "sip:bob@sipua.test"), and fails the test when
// it cannot be written.
func (p *Peer) Do(t testing.TB, cmd string, kv ...any) {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("Do(%s): odd number of arguments", cmd)
	}
	fields := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		fields[fmt.Sprint(kv[i])] = kv[i+1]
	}
	if err := p.Send(cmd, fields); err != nil {
		t.Fatal(err)
	}
}

// WaitEvent returns the earliest event called name that no earlier wait
// returned and that every match accepts, and marks it taken. It gives up
// with an error when ctx ends, when the peer exits, or when the peer
// reports an "error" event (unless name is "error").
func (p *Peer) WaitEvent(ctx context.Context, name string, match ...func(Event) bool) (Event, error) {
	for {
		p.mu.Lock()
		for i, ev := range p.events {
			if p.taken[i] {
				continue
			}
			if ev.Name == "error" && name != "error" {
				p.taken[i] = true
				p.mu.Unlock()
				return Event{}, fmt.Errorf("%s reported an error while waiting for %q: %s", p.Name, name, ev.Raw)
			}
			if ev.Name != name || !matchAll(ev, match) {
				continue
			}
			p.taken[i] = true
			p.mu.Unlock()
			return ev, nil
		}
		changed, exited, exitErr := p.changed, p.exited, p.exitErr
		p.mu.Unlock()
		if exited {
			return Event{}, fmt.Errorf("%s exited (%v) without event %q", p.Name, exitErr, name)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("%s: no event %q: %w", p.Name, name, ctx.Err())
		}
	}
}

func matchAll(ev Event, match []func(Event) bool) bool {
	for _, m := range match {
		if !m(ev) {
			return false
		}
	}
	return true
}

// Field returns a matcher for WaitEvent accepting events whose member key
// equals want (compared as Event.Get formats it).
func Field(key, want string) func(Event) bool {
	return func(e Event) bool { return e.Get(key) == want }
}

// Expect waits up to DefaultEventTimeout for event name whose members
// equal the given key/value pairs (e.g. Expect(t, "rejected", "code",
// "486")) and fails the test when it does not come.
func (p *Peer) Expect(t testing.TB, name string, kv ...string) Event {
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
	ev, err := p.WaitEvent(ctx, name, match...)
	if err != nil {
		t.Fatalf("%v %v", err, kv)
	}
	return ev
}

// Events returns a copy of all events received so far.
func (p *Peer) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// EventLog returns the events received so far, one line each.
func (p *Peer) EventLog() string {
	var b strings.Builder
	for _, e := range p.Events() {
		b.WriteString(e.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Log returns what the peer wrote on stderr: its library's log, SIP trace
// included.
func (p *Peer) Log() string { return p.log.String() }

// stop asks the peer to quit (it unregisters and ends its calls), then
// sends SIGTERM and finally SIGKILL to its process group, by PID.
func (p *Peer) stop(t testing.TB) {
	_ = p.Send("quit", nil)
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return
	case <-time.After(4 * time.Second):
	}
	pid := p.cmd.Process.Pid
	t.Logf("%s (pid %d) did not quit; sending SIGTERM", p.Name, pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(2 * time.Second):
	}
	t.Logf("%s (pid %d) ignored SIGTERM; killing its process group", p.Name, pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the peer process has ended, and its error.
func (p *Peer) Exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, p.exitErr
}
