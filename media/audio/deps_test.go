package audio_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoWebRTCLinked: the root package, media/rtp, media/wav and this
// package link no pion/webrtc (a plain-RTP or signalling-only program
// stays small); only media/webrtc does.
func TestNoWebRTCLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/sipua/sip", "github.com/sipua/sip/media/rtp",
		"github.com/sipua/sip/media/wav", "github.com/sipua/sip/media/audio").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "pion/webrtc") || strings.HasSuffix(p, "sip/media/webrtc") {
			t.Errorf("linked: %s", p)
		}
	}
}
