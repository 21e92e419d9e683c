package sip_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
)

// inNetnsEnv marks the re-executed test binary running inside its own
// network namespace.
const inNetnsEnv = "SIPUA_LOSS_NETNS"

// lossRuleset drops 20% of the UDP datagrams arriving on lo, at the input
// hook: the sender's sendto() succeeds, as with real loss. Each datagram
// crosses the hook once, so both directions lose 20%.
const lossRuleset = `table inet sipua_loss {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "lo" meta l4proto udp numgen random mod 100 < 20 counter drop
	}
}
`

// TestLossNetns runs the loss runs (100 calls, 100 registrations) on real
// UDP sockets on 127.0.0.1 inside a private network namespace where
// nftables drops 20% of the datagrams. It needs root (unshare -n, nft); the
// test binary re-executes itself inside the namespace.
func TestLossNetns(t *testing.T) {
	if os.Getenv(inNetnsEnv) == "" {
		if testing.Short() {
			t.Skip("-short")
		}
		if os.Geteuid() != 0 {
			t.Skip("needs root for unshare -n and nftables")
		}
		for _, tool := range []string{"unshare", "ip", "nft"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s not found (interop/install.sh installs nftables): %v", tool, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-n", os.Args[0],
			"-test.run=^TestLossNetns$", "-test.v", "-test.count=1", "-test.timeout=3m")
		cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("inside the namespace:\n%s", out)
		if err != nil {
			t.Fatalf("test in the network namespace: %v", err)
		}
		if !strings.Contains(string(out), "--- PASS: TestLossNetns") {
			t.Fatalf("the test did not run in the namespace")
		}
		return
	}

	// Inside the namespace: only lo, brought up, with the loss rule.
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	nft := exec.Command("nft", "-f", "-")
	nft.Stdin = strings.NewReader(lossRuleset)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	counter := func() string {
		out, err := exec.Command("nft", "list", "chain", "inet", "sipua_loss", "input").CombinedOutput()
		if err != nil {
			return fmt.Sprintf("nft: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if i := strings.Index(l, "counter packets"); i >= 0 {
				return "nftables has dropped in all (probe included) " + strings.TrimSpace(strings.TrimSuffix(l[i+len("counter "):], "drop"))
			}
		}
		return string(out)
	}
	env := lossEnv{
		listen:    func(string) func(context.Context, string, string) (net.PacketConn, error) { return nil },
		alice:     "127.0.0.1:5061",
		bob:       "127.0.0.1:5062",
		registrar: "127.0.0.1:5060",
		ua:        func(k int) string { return fmt.Sprintf("127.0.0.1:%d", 6000+k) },
		stats:     counter,
		// Real time: a shorter T1 (loopback round trips are far below
		// it) and calls of one second keep the run short. T2 caps the
		// 2xx retransmission interval: with T1 100 ms and T2 1 s, a 2xx
		// goes 9 times in its 64·T1 (6.4 s) and, at 20% loss each way,
		// all 9 round trips (200 then ACK) fail for one call in 6700,
		// one run in 67 with 100 calls (seen once). T2 400 ms makes it 17
		// times: one call in 17 million.
		timers: sip.Timers{T1: 100 * time.Millisecond, T2: 400 * time.Millisecond, T4: time.Second},
		hold:   time.Second,
	}
	// Check that the rule is in force: a burst of datagrams loses about 20%.
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	got := 0
	buf := make([]byte, 16)
	for range 10 { // in bursts the socket buffer holds
		for range 100 {
			_, err := a.WriteTo([]byte("x"), b.LocalAddr())
			require.NoError(t, err, "sendto must not fail: the loss is on arrival")
		}
		for {
			_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := b.ReadFrom(buf); err != nil {
				break
			}
			got++
		}
	}
	t.Logf("probe: %d of 1000 datagrams arrived", got)
	require.InDelta(t, 800, got, 80, "about 20%% loss")

	t.Run("calls", func(t *testing.T) { runLossCalls(t, "netns loss20", env) })
	t.Run("registrations", func(t *testing.T) { runLossRegistrations(t, "netns loss20", env) })
}
