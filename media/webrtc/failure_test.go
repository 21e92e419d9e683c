package webrtc

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

// failures returns a channel of the errors h reports to OnFailure.
func failures(h *Handler) chan error {
	ch := make(chan error, 2)
	h.OnFailure(func(err error) { ch <- err })
	return ch
}

func expectFailure(t *testing.T, name string, ch chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		if !errors.Is(err, media.ErrICEFailed) {
			t.Errorf("%s: failure %v, want one wrapping media.ErrICEFailed", name, err)
		}
		return err
	case <-time.After(within):
		t.Fatalf("%s: no failure reported in %v", name, within)
	}
	return nil
}

// TestICEFailure: one end gathers no candidate (as a zero Config does on a
// loopback-only host): ICE never connects, fails, and both handlers
// report it.
func TestICEFailure(t *testing.T) {
	short := func(s *pion.SettingEngine) {
		s.SetICETimeouts(300*time.Millisecond, 700*time.Millisecond, 100*time.Millisecond)
	}
	a := newHandler(t, Config{Configure: short})
	b, err := New(Config{IncludeLoopback: true, IPFilter: func(net.IP) bool { return false }, Configure: short})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fa, fb := failures(a), failures(b)
	exchange(t, a, b, media.Options{}, media.Options{})
	err = expectFailure(t, "a", fa, 10*time.Second)
	expectFailure(t, "b", fb, 10*time.Second)
	t.Logf("reported: %v", err)
	if s := a.Stats(); s.ICEConnectionState != pion.ICEConnectionStateFailed || !errors.Is(s.Failure, media.ErrICEFailed) {
		t.Errorf("stats: ICE %s, failure %v", s.ICEConnectionState, s.Failure)
	}
	select {
	case err := <-fa:
		t.Errorf("reported twice: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestICEDisconnected: ICE disconnected for DisconnectedTimeout is a
// failure; reconnecting before stops the clock; a closed handler reports
// nothing.
func TestICEDisconnected(t *testing.T) {
	h := newHandler(t, Config{DisconnectedTimeout: 100 * time.Millisecond})
	ch := failures(h)
	h.iceState(pion.ICEConnectionStateDisconnected)
	time.Sleep(50 * time.Millisecond)
	h.iceState(pion.ICEConnectionStateConnected)
	select {
	case err := <-ch:
		t.Fatalf("failure after reconnecting: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	h.iceState(pion.ICEConnectionStateDisconnected)
	start := time.Now()
	expectFailure(t, "disconnected", ch, 2*time.Second)
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("reported after %v, before the timeout", d)
	}

	never := newHandler(t, Config{DisconnectedTimeout: -1})
	ch = failures(never)
	never.iceState(pion.ICEConnectionStateDisconnected)
	closed := newHandler(t, Config{DisconnectedTimeout: 50 * time.Millisecond})
	ch2 := failures(closed)
	closed.iceState(pion.ICEConnectionStateDisconnected)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ch:
		t.Errorf("negative timeout reported %v", err)
	case err := <-ch2:
		t.Errorf("closed handler reported %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// mline returns the m= line of a kind in an SDP.
func mline(body, kind string) string {
	for _, l := range strings.Split(body, "\r\n") {
		if strings.HasPrefix(l, "m="+kind+" ") {
			return l
		}
	}
	return ""
}

// TestCodecOrder: Config.Codecs and media.Options.Codecs order and narrow
// what is offered, answered and sent.
func TestCodecOrder(t *testing.T) {
	a := newHandler(t, Config{Codecs: []string{"pcma", "PCMU", "H264"}})
	b := newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	b.SetAudioSource(Tone(440))
	offer, answer := exchange(t, a, b, withVideo, media.Options{Constraints: withVideo.Constraints, Codecs: []string{"PCMU", "PCMA"}})
	if m := mline(offer, "audio"); !strings.HasSuffix(m, "RTP/SAVPF 8 0 101") {
		t.Errorf("offer's audio: %s", m)
	}
	if m := mline(offer, "video"); !strings.HasSuffix(m, "RTP/SAVPF 102 104") {
		t.Errorf("offer's video: %s", m)
	}
	if m := mline(answer, "audio"); !strings.HasSuffix(m, "RTP/SAVPF 0 8 101") {
		t.Errorf("answer's audio (PCMU preferred per call): %s", m)
	}
	waitFor(t, "connected", 5*time.Second, connected(a, b))
	receivedMore(t, "a", a, 10)
	receivedMore(t, "b", b, 10)
	sa, sb := a.Stats().Audio, b.Stats().Audio
	if sa.Codec != "audio/PCMA" || sb.CodecReceived != "audio/PCMA" {
		t.Errorf("a sends %q, b receives %q; want PCMA", sa.Codec, sb.CodecReceived)
	}
	if sb.Codec != "audio/PCMU" || sa.CodecReceived != "audio/PCMU" {
		t.Errorf("b sends %q, a receives %q; want PCMU", sb.Codec, sa.CodecReceived)
	}

	c, d := newHandler(t, Config{}), newHandler(t, Config{})
	_, answer = exchange(t, d, c, media.Options{}, media.Options{Codecs: []string{"PCMA"}})
	if m := mline(answer, "audio"); !strings.HasSuffix(m, "RTP/SAVPF 8 101") {
		t.Errorf("answer narrowed to PCMA: %s", m)
	}
}
