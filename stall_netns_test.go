package sip

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stallNetnsEnv marks the re-executed test binary running inside its own
// network and mount namespaces; its value is the resolv.conf to mount.
const stallNetnsEnv = "SIPUA_STALL_NETNS"

// stallRuleset black-holes TCP to 127.0.0.1:5999 and DNS to 127.0.0.1:53
// at the input hook: a dial there and a DNS query hang as they do towards
// a host that is down behind a firewall.
const stallRuleset = `table inet sipua_stall {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "lo" tcp dport 5999 drop
		iifname "lo" udp dport 53 drop
		iifname "lo" tcp dport 53 drop
	}
}
`

// TestStuckDestinationNetns is TestStuckDestinationDoesNotStallTheUserAgent
// on the real network stack: inside a private network namespace
// (unshare -n -m, root) nftables drops the SYNs to 127.0.0.1:5999 and the
// DNS queries to the only name server (127.0.0.1, from a resolv.conf
// mounted over /etc/resolv.conf), and the UserAgent uses the operating
// system's dialer and Go's resolver.
func TestStuckDestinationNetns(t *testing.T) {
	conf := os.Getenv(stallNetnsEnv)
	if conf == "" {
		if testing.Short() {
			t.Skip("-short")
		}
		if os.Geteuid() != 0 {
			t.Skip("needs root for unshare -n -m, mount and nftables")
		}
		for _, tool := range []string{"unshare", "ip", "nft", "mount"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s not found (interop/install.sh installs nftables): %v", tool, err)
			}
		}
		conf = filepath.Join(t.TempDir(), "resolv.conf")
		require.NoError(t, os.WriteFile(conf, []byte("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n"), 0o644))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-n", "-m", os.Args[0],
			"-test.run=^TestStuckDestinationNetns$", "-test.v", "-test.count=1", "-test.timeout=50s")
		cmd.Env = append(os.Environ(), stallNetnsEnv+"="+conf)
		out, err := cmd.CombinedOutput()
		t.Logf("inside the namespace:\n%s", out)
		if err != nil {
			t.Fatalf("test in the network namespace: %v", err)
		}
		if !strings.Contains(string(out), "--- PASS: TestStuckDestinationNetns") {
			t.Fatalf("the test did not run in the namespace")
		}
		return
	}

	// Inside the namespaces: only lo, brought up, the drop rules, and the
	// resolv.conf naming 127.0.0.1 (mounts are private to the namespace).
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"mount", "--bind", conf, "/etc/resolv.conf"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	nft := exec.Command("nft", "-f", "-")
	nft.Stdin = strings.NewReader(stallRuleset)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	dropped := func(port string) bool {
		out, err := exec.Command("nft", "-a", "list", "chain", "inet", "sipua_stall", "input").CombinedOutput()
		return err == nil && strings.Contains(string(out), "dport "+port)
	}
	require.True(t, dropped("5999") && dropped("53"), "the drop rules are in force")

	for _, tc := range []struct{ name, target string }{
		{"tcp dial", "sip:stuck@127.0.0.1:5999;transport=tcp"},
		{"dns", "sip:stuck@stuck.sipua.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := &TestMediaFactory{SDP: testSDP}
			alice, err := NewUserAgent(UserAgentOptions{
				URI:          "sip:alice@127.0.0.1",
				Transport:    TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
				MediaFactory: hs.New,
			})
			require.NoError(t, err)
			require.NoError(t, alice.Start(ctx5(t)))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				t0 := time.Now()
				require.NoError(t, alice.Stop(ctx))
				// Stop gives the stuck call until ctx ends (1 s); the
				// dial or look-up still in flight then ends with it. The
				// name server's own timeout here is 30 s: Go's resolver
				// used to wait for it (bounded by our 5 s look-up
				// timeout), and Stop took 5 s.
				d := time.Since(t0)
				t.Logf("Stop took %v", d)
				assert.Less(t, d, 2*time.Second, "Stop waited for the stuck destination")
			})
			// The stuck call's dial or look-up runs once its INVITE left
			// the loop: give it a moment.
			t0 := time.Now()
			checkNoStall(t, alice, tc.target, func() bool { return time.Since(t0) > 100*time.Millisecond })
		})
	}
}
