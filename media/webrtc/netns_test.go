package webrtc

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

// loopbackNetnsEnv marks the re-executed test binary running inside a
// network namespace that has only lo.
const loopbackNetnsEnv = "SIPUA_WEBRTC_LOOPBACK_NETNS"

// TestZeroConfigLoopbackOnlyNetns: on a host with only a loopback
// interface (a private network namespace, unshare -n, as root), a handler
// with the zero Config logs a warning through its logger, gathers no
// candidate, and reports its media failed (media.ErrICEFailed) instead of
// leaving a silent call; with LoopbackOnly the same host connects.
func TestZeroConfigLoopbackOnlyNetns(t *testing.T) {
	if os.Getenv(loopbackNetnsEnv) == "" {
		if testing.Short() {
			t.Skip("-short")
		}
		if os.Geteuid() != 0 {
			t.Skip("needs root for unshare -n")
		}
		for _, tool := range []string{"unshare", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s not found: %v", tool, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-n", os.Args[0],
			"-test.run=^TestZeroConfigLoopbackOnlyNetns$", "-test.v", "-test.count=1", "-test.timeout=50s")
		cmd.Env = append(os.Environ(), loopbackNetnsEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("inside the namespace:\n%s", out)
		if err != nil {
			t.Fatalf("test in the network namespace: %v", err)
		}
		if !strings.Contains(string(out), "--- PASS: TestZeroConfigLoopbackOnlyNetns") {
			t.Fatal("the test did not run in the namespace")
		}
		return
	}

	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	if !onlyLoopback() {
		t.Fatal("the namespace has a non-loopback address")
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	open := func(cfg Config) *Handler {
		h, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	zero := open(Config{Logger: log})
	// The peer has short ICE timeouts (zero's are pion's: it gives up
	// after some 30 s, not waited for here); with Configure set it does
	// not warn.
	peer := open(Config{Configure: func(s *pion.SettingEngine) {
		s.SetICETimeouts(300*time.Millisecond, 700*time.Millisecond, 100*time.Millisecond)
	}})
	pf := failures(peer)
	offer, _ := exchange(t, zero, peer, media.Options{}, media.Options{})
	if strings.Contains(offer, "a=candidate") {
		t.Errorf("the zero Config gathered candidates on a loopback-only host:\n%s", offer)
	}
	if !strings.Contains(string(logs.Bytes()), "only loopback") {
		t.Errorf("no warning logged: %q", logs.Bytes())
	}
	t.Logf("logged: %s", strings.TrimSpace(string(logs.Bytes())))
	err := expectFailure(t, "the zero Config's peer", pf, 15*time.Second)
	t.Logf("the peer reported: %v", err)

	// With LoopbackOnly the same host connects.
	a, b := newHandler(t, Config{}), newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "LoopbackOnly connecting", 5*time.Second, connected(a, b))
	receivedMore(t, "b", b, 10)
}
