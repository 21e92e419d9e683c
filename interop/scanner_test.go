package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// scan is one run of a sipvicious tool.
type scan struct {
	tool string
	args []string
	out  string
	err  error
}

// runScans runs sipvicious tools (svmap, svwar, svcrack) at once against
// 127.0.0.1:port, each from a free local port and bounded by timeout; a
// process that runs over is killed by its PID. It fails the test when a
// tool is missing, runs over or crashes.
func runScans(t *testing.T, timeout time.Duration, port uint16, scans ...*scan) {
	t.Helper()
	local, err := freePorts(len(scans))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, sc := range scans {
		bin, err := exec.LookPath(sc.tool)
		if err != nil {
			t.Fatalf("%s is not installed (%v): run interop/install.sh as root (scripts/test.sh does), "+
				"or apt-get install sipvicious", sc.tool, err)
		}
		sc.args = append([]string{"-b", "127.0.0.1", "-x", "127.0.0.1", "-P", fmt.Sprint(local[i]), "-p", fmt.Sprint(port), "-t", "0.01"}, sc.args...)
		sc.args = append(sc.args, "127.0.0.1")
		cmd := exec.CommandContext(ctx, bin, sc.args...) // killed by PID when ctx ends
		home := t.TempDir()
		cmd.Dir = home
		cmd.Env = append(os.Environ(), "HOME="+home)
		wg.Go(func() {
			out, err := cmd.CombinedOutput()
			sc.out, sc.err = string(out), err
		})
	}
	wg.Wait()
	for _, sc := range scans {
		t.Logf("%s %s (%v):\n%s", sc.tool, strings.Join(sc.args, " "), sc.err, sc.out)
		assert.NotContains(t, sc.out, "Traceback", "%s crashed", sc.tool)
	}
	require.NoError(t, ctx.Err(), "scanners ran over %v", timeout)
}

// scanned is a listening UserAgent that records what reaches its
// application.
type scanned struct {
	ua   *sip.UserAgent
	port uint16
	mu   sync.Mutex
	got  []string
}

func (s *scanned) note(what string) {
	s.mu.Lock()
	s.got = append(s.got, what)
	s.mu.Unlock()
}

func (s *scanned) reached() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func startScanned(t *testing.T, opts sip.UserAgentOptions) *scanned {
	t.Helper()
	s := &scanned{}
	ports, err := freePorts(1)
	require.NoError(t, err)
	s.port = ports[0]
	opts.Transport.Listen = []string{fmt.Sprintf("udp://127.0.0.1:%d", s.port)}
	opts.MediaFactory = sip.NoMedia
	opts.AuthorizationPassword = "bob-pw"
	opts.Delegate = sip.UserAgentDelegate{
		OnInvite: func(inv *sip.Invitation) {
			s.note("INVITE " + inv.Request.URI.String())
			_ = inv.Reject(context.Background(), 486, "")
		},
		OnMessage: func(m *sip.IncomingRequest) { s.note("MESSAGE") },
		// No OnRequest: REGISTER, SUBSCRIBE … get the defaults (405).
	}
	ua, err := sip.NewUserAgent(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(ctx)
	})
	s.ua = ua
	return s
}

// stillAnswers checks that a UserAgent answers OPTIONS after a scan.
func stillAnswers(t *testing.T, s *scanned) {
	t.Helper()
	probe, err := sip.NewUserAgent(sip.UserAgentOptions{URI: "sip:probe@127.0.0.1", MediaFactory: sip.NoMedia,
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, probe.Start(ctx))
	defer func() { _ = probe.Stop(ctx) }()
	resp, err := probe.Options(ctx, fmt.Sprintf("sip:bob@127.0.0.1:%d", s.port), sip.RequestOptions{})
	require.NoError(t, err, "OPTIONS after the scan")
	assert.Equal(t, 200, resp.StatusCode)
}

// TestScanners runs sipvicious against a listening UserAgent. Open (the
// default): svmap finds it (it answers OPTIONS, as a phone must), svwar
// finds no extension by REGISTER, OPTIONS or INVITE (its answers do not
// depend on the user), svcrack finds no password (a UserAgent never
// challenges with its own credentials), and nothing crashes. With
// AcceptOnlyFromServer: svmap finds nothing, and no request of any tool
// reaches the application; a MESSAGE through the server still does.
func TestScanners(t *testing.T) {
	dir := t.TempDir()
	dict := filepath.Join(dir, "users.txt")
	require.NoError(t, os.WriteFile(dict, []byte("bob\nalice\n100\n101\n1000\nadmin\n"), 0o644))
	pwds := filepath.Join(dir, "passwords.txt")
	require.NoError(t, os.WriteFile(pwds, []byte("123456\npassword\nbob\nbob-pw\n"), 0o644))

	users := `(?m)^\|\s*(bob|alice|100|101|1000|admin)\s*\|`

	t.Run("open", func(t *testing.T) {
		s := startScanned(t, sip.UserAgentOptions{URI: "sip:bob@127.0.0.1"})
		svmap := &scan{tool: "svmap"}
		scans := []*scan{svmap}
		for _, m := range []string{"REGISTER", "OPTIONS", "INVITE"} {
			scans = append(scans, &scan{tool: "svwar", args: []string{"-m", m, "-d", dict, "--force"}})
		}
		svcrack := &scan{tool: "svcrack", args: []string{"-u", "bob", "-d", pwds}}
		scans = append(scans, svcrack)
		runScans(t, 60*time.Second, s.port, scans...)
		assert.Contains(t, svmap.out, fmt.Sprintf("127.0.0.1:%d", s.port), "svmap finds a listening UserAgent")
		for _, sc := range scans[1:4] {
			assert.NotRegexp(t, users, sc.out, "svwar %v enumerated a user", sc.args)
		}
		assert.NotContains(t, svcrack.out, "bob-pw", "svcrack found the password")
		assert.NotRegexp(t, `(?m)^\|\s*bob\s*\|`, svcrack.out, "svcrack reports bob")
		stillAnswers(t, s)
		// Without AcceptOnlyFromServer, svwar's INVITEs ring the phone:
		// that is what the option is for.
		t.Logf("reached the application: %v", s.reached())
	})

	t.Run("AcceptOnlyFromServer", func(t *testing.T) {
		srv, err := sipserver.New(sipserver.Options{Users: map[string]string{"bob": "bob-pw", "alice": "alice-pw"},
			Listen: []string{"udp://127.0.0.1:0"}})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Start(ctx))
		defer srv.Close()
		s := startScanned(t, sip.UserAgentOptions{URI: srv.AOR("bob"), AcceptOnlyFromServer: true,
			Transport: sip.TransportOptions{Server: srv.URI(transport.UDP).String()}})
		reg, err := sip.NewRegisterer(s.ua, sip.RegistererOptions{})
		require.NoError(t, err)
		require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))

		svmap := &scan{tool: "svmap"}
		scans := []*scan{svmap,
			{tool: "svwar", args: []string{"-m", "REGISTER", "-d", dict, "--force"}},
			{tool: "svwar", args: []string{"-m", "INVITE", "-d", dict, "--force"}},
			{tool: "svcrack", args: []string{"-u", "bob", "-d", pwds}},
		}
		runScans(t, 60*time.Second, s.port, scans...)
		assert.NotContains(t, svmap.out, fmt.Sprintf("127.0.0.1:%d", s.port), "svmap finds a UserAgent that takes requests only from its server")
		for _, sc := range scans[1:] {
			assert.NotRegexp(t, users, sc.out, "%s %v found a user", sc.tool, sc.args)
		}
		assert.Empty(t, s.reached(), "scanner requests reached the application")

		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		alice, err := sip.NewUserAgent(sip.UserAgentOptions{URI: srv.AOR("alice"), AuthorizationPassword: "alice-pw",
			MediaFactory: sip.NoMedia, Transport: sip.TransportOptions{Server: srv.URI(transport.UDP).String()}})
		require.NoError(t, err)
		require.NoError(t, alice.Start(ctx))
		defer func() { _ = alice.Stop(ctx) }()
		m, err := sip.NewMessager(alice, srv.AOR("bob"), []byte("hi"), "text/plain", sip.RequestOptions{})
		require.NoError(t, err)
		require.NoError(t, m.Message(ctx))
		assert.Equal(t, []string{"MESSAGE"}, s.reached())
		require.NoError(t, reg.Unregister(ctx, sip.UnregisterOptions{}))
	})
}
