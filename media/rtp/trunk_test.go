package rtp

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	prtp "github.com/pion/rtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/audio"
)

// toneMeter counts the frames OnAudio hands over in which a tone of hz
// dominates.
type toneMeter struct {
	hz     float64
	mu     sync.Mutex
	frames int
	tone   int
}

func (m *toneMeter) attach(h *Handler) {
	h.OnAudio(func(pcm []int16) {
		r := audio.ToneRatio(pcm, m.hz, SampleRate)
		m.mu.Lock()
		m.frames++
		if r > 0.5 {
			m.tone++
		}
		m.mu.Unlock()
	})
}

func (m *toneMeter) counts() (frames, tone int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frames, m.tone
}

// hearEachOther gives alice a 1000 Hz and bob a 600 Hz tone and waits
// until each recognizes the other's in what it decodes.
func hearEachOther(t *testing.T, alice, bob *Handler) {
	t.Helper()
	alice.SetAudioSource(Tone(1000))
	bob.SetAudioSource(Tone(600))
	ma, mb := &toneMeter{hz: 600}, &toneMeter{hz: 1000}
	ma.attach(alice)
	mb.attach(bob)
	waitFor(t, 3*time.Second, "each tone recognized at the other end", func() bool {
		_, a := ma.counts()
		_, b := mb.counts()
		return a >= 10 && b >= 10
	})
}

// TestSRTPCalls: two handlers protect their media with each crypto suite
// under each policy pair that has SRTP; the offer is RTP/AVP with a=crypto
// lines (policy offer) or RTP/SAVP (required), the answer takes the first
// suite and mirrors the profile; the tones are recognized after
// decryption and decoding, and no packet fails authentication.
func TestSRTPCalls(t *testing.T) {
	for _, suite := range []SRTPSuite{SRTPAES128SHA80, SRTPAES128SHA32, SRTPAEADAES128GCM} {
		for _, pols := range [][2]SRTPPolicy{{SRTPOffer, SRTPOffer}, {SRTPRequired, SRTPOffer}, {SRTPOffer, SRTPRequired}} {
			t.Run(fmt.Sprintf("%s/%v-%v", suite, pols[0], pols[1]), func(t *testing.T) {
				alice := newHandler(t, Config{SRTP: pols[0], SRTPSuites: []SRTPSuite{suite}})
				bob := newHandler(t, Config{SRTP: pols[1]})
				offer, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
				profile := "RTP/AVP"
				if pols[0] == SRTPRequired {
					profile = "RTP/SAVP"
				}
				assert.Contains(t, offer, "m=audio "+fmt.Sprint(alice.LocalAddr().Port())+" "+profile+" ")
				assert.Contains(t, answer, "m=audio "+fmt.Sprint(bob.LocalAddr().Port())+" "+profile+" ")
				assert.Regexp(t, `a=crypto:1 `+string(suite)+` inline:[A-Za-z0-9+/=]{36,40}\r\n`, offer)
				assert.Regexp(t, `a=crypto:1 `+string(suite)+` inline:`, answer)
				hearEachOther(t, alice, bob)
				for name, h := range map[string]*Handler{"alice": alice, "bob": bob} {
					st := h.Stats()
					assert.Equal(t, suite, st.SRTP, name)
					assert.Zero(t, st.SRTPFailed, name)
				}
			})
		}
	}
}

// TestSRTPPolicies: what each policy does with a peer that has another.
func TestSRTPPolicies(t *testing.T) {
	t.Run("offer to plain: RTP", func(t *testing.T) {
		alice, bob := newHandler(t, Config{SRTP: SRTPOffer}), newHandler(t, Config{})
		_, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
		assert.NotContains(t, answer, "a=crypto")
		hearEachOther(t, alice, bob)
		assert.Empty(t, alice.Stats().SRTP)
	})
	t.Run("required to plain: refused", func(t *testing.T) {
		alice, bob := newHandler(t, Config{SRTP: SRTPRequired}), newHandler(t, Config{})
		o, err := alice.GetDescription(ctx, media.Options{})
		require.NoError(t, err)
		assert.ErrorIs(t, bob.SetDescription(ctx, o, media.Options{}), media.ErrNotAcceptable)
	})
	t.Run("plain to required: refused", func(t *testing.T) {
		alice, bob := newHandler(t, Config{}), newHandler(t, Config{SRTP: SRTPRequired})
		o, err := alice.GetDescription(ctx, media.Options{})
		require.NoError(t, err)
		assert.ErrorIs(t, bob.SetDescription(ctx, o, media.Options{}), media.ErrNotAcceptable)
	})
	t.Run("required gets a plain answer: refused", func(t *testing.T) {
		alice := newHandler(t, Config{SRTP: SRTPRequired})
		_, err := alice.GetDescription(ctx, media.Options{})
		require.NoError(t, err)
		err = alice.SetDescription(ctx, sdpDesc("v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
			"m=audio 4000 RTP/SAVP 0"), media.Options{})
		assert.ErrorIs(t, err, media.ErrNotAcceptable)
	})
	t.Run("per call", func(t *testing.T) {
		alice, bob := newHandler(t, Config{}), newHandler(t, Config{SRTP: SRTPRequired})
		alice.SetSRTP(SRTPOffer)
		exchange(t, alice, bob, media.Options{}, media.Options{})
		hearEachOther(t, alice, bob)
		assert.Equal(t, SRTPAES128SHA80, alice.Stats().SRTP)
	})
}

var inlineKey = regexp.MustCompile(`inline:([A-Za-z0-9+/=]+)`)

// TestSRTPWrongKey, the negative control: bob is given other key material
// than alice sends with. Everything alice sends fails authentication at
// bob, who decodes nothing of her tone, while alice, whose view of bob's
// key is right, hears him.
func TestSRTPWrongKey(t *testing.T) {
	alice, bob := newHandler(t, Config{SRTP: SRTPRequired}), newHandler(t, Config{SRTP: SRTPRequired})
	o, err := alice.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	wrong := make([]byte, 30)
	for i := range wrong {
		wrong[i] = byte(i * 7)
	}
	o.Body = []byte(inlineKey.ReplaceAllString(string(o.Body), "inline:"+base64.StdEncoding.EncodeToString(wrong)))
	require.NoError(t, bob.SetDescription(ctx, o, media.Options{}))
	a, err := bob.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	require.NoError(t, alice.SetDescription(ctx, a, media.Options{}))
	alice.SetAudioSource(Tone(1000))
	bob.SetAudioSource(Tone(600))
	ma, mb := &toneMeter{hz: 600}, &toneMeter{hz: 1000}
	ma.attach(alice)
	mb.attach(bob)
	waitFor(t, 3*time.Second, "alice hears bob", func() bool { _, n := ma.counts(); return n >= 10 })
	waitFor(t, 2*time.Second, "bob rejects alice's packets", func() bool { return bob.Stats().SRTPFailed >= 25 })
	_, heard := mb.counts()
	assert.Zero(t, heard, "bob decoded alice's tone without her key")
	assert.Zero(t, bob.Stats().PacketsReceived)
}

// TestSRTPKeysNotLogged: the debug log of a whole SRTP call holds no key.
func TestSRTPKeysNotLogged(t *testing.T) {
	var log strings.Builder
	var mu sync.Mutex
	logger := newTestLogger(&log, &mu)
	alice := newHandler(t, Config{SRTP: SRTPRequired, Logger: logger})
	bob := newHandler(t, Config{SRTP: SRTPRequired, Logger: logger})
	offer, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
	hearEachOther(t, alice, bob)
	mu.Lock()
	defer mu.Unlock()
	for _, m := range append(inlineKey.FindAllStringSubmatch(offer, -1), inlineKey.FindAllStringSubmatch(answer, -1)...) {
		assert.NotContains(t, log.String(), m[1])
	}
	assert.Contains(t, log.String(), "srtp="+string(SRTPAES128SHA80))
}

// TestG722Call: G.722 negotiated on payload type 9 with an 8000 Hz clock
// (RFC 3551), 160 bytes and 160 timestamp ticks per 20 ms though the audio
// is 16 kHz; each tone is recognized after decoding at the other end.
func TestG722Call(t *testing.T) {
	alice := newHandler(t, Config{Codecs: []Codec{G722, PCMU}})
	bob := newHandler(t, Config{Codecs: []Codec{G722, PCMA}})
	offer, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
	assert.Contains(t, offer, " RTP/AVP 9 0 101\r\n")
	assert.Contains(t, offer, "a=rtpmap:9 G722/8000\r\n")
	assert.Contains(t, answer, " RTP/AVP 9 101\r\n")
	var mu sync.Mutex
	var steps []uint32
	var last uint32
	bob.OnRTP(func(p *prtp.Packet) {
		mu.Lock()
		if p.PayloadType == 9 {
			if last != 0 {
				steps = append(steps, p.Timestamp-last)
			}
			last = p.Timestamp
			assert.Len(t, p.Payload, 160)
		}
		mu.Unlock()
	})
	hearEachOther(t, alice, bob)
	for _, h := range []*Handler{alice, bob} {
		assert.Equal(t, G722, h.Stats().Codec)
	}
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, steps)
	for _, s := range steps {
		assert.Equal(t, uint32(160), s)
	}
}

// TestCodecOrderPerCall: media.Options.Codecs reorders and narrows the
// configured codecs for one offer or answer; names the handler does not
// know are ignored.
func TestCodecOrderPerCall(t *testing.T) {
	alice := newHandler(t, Config{Codecs: []Codec{PCMU, PCMA, G722}})
	bob := newHandler(t, Config{Codecs: []Codec{PCMU, PCMA, G722}})
	offer, answer := exchange(t, alice, bob, media.Options{Codecs: []string{"g722", "opus", "PCMA"}},
		media.Options{Codecs: []string{"PCMA"}})
	assert.Contains(t, offer, " RTP/AVP 9 8 101\r\n")
	assert.Contains(t, answer, " RTP/AVP 8 101\r\n")
	waitFor(t, 2*time.Second, "PCMA", func() bool { return alice.Stats().Codec == PCMA && bob.Stats().Codec == PCMA })
}

// TestMediaTimeout: a peer that goes silent (closed) makes the handler
// report media.ErrMediaTimeout once, within its bound; a call on hold
// (we send only) never times out.
func TestMediaTimeout(t *testing.T) {
	const limit = 300 * time.Millisecond
	alice := newHandler(t, Config{MediaTimeout: limit, RTCPInterval: 100 * time.Millisecond})
	bob := newHandler(t, Config{})
	fails := make(chan error, 2)
	alice.OnFailure(func(err error) { fails <- err })
	exchange(t, alice, bob, media.Options{}, media.Options{})
	waitFor(t, 2*time.Second, "media", func() bool { return alice.Stats().PacketsReceived > 5 })
	select {
	case err := <-fails:
		t.Fatalf("failure while media flow: %v", err)
	case <-time.After(2 * limit):
	}
	require.NoError(t, bob.Close())
	stopped := time.Now()
	select {
	case err := <-fails:
		assert.ErrorIs(t, err, media.ErrMediaTimeout)
		took := time.Since(stopped)
		t.Logf("media timeout after %v: %v", took, err)
		assert.Less(t, took, limit+200*time.Millisecond)
	case <-time.After(3 * time.Second):
		t.Fatal("no media timeout")
	}
	select {
	case err := <-fails:
		t.Fatalf("reported twice: %v", err)
	case <-time.After(2 * limit):
	}

	// On hold, either way: nothing is expected.
	for _, weHold := range []bool{true, false} {
		carol := newHandler(t, Config{MediaTimeout: limit})
		dave := newHandler(t, Config{})
		carol.OnFailure(func(err error) { fails <- err })
		exchange(t, carol, dave, media.Options{}, media.Options{})
		waitFor(t, 2*time.Second, "media", func() bool { return carol.Stats().PacketsReceived > 5 })
		if weHold {
			exchange(t, carol, dave, media.Options{Hold: true}, media.Options{})
		} else {
			exchange(t, dave, carol, media.Options{Hold: true}, media.Options{})
		}
		require.NoError(t, dave.Close())
		select {
		case err := <-fails:
			t.Fatalf("timeout on hold (we hold: %v): %v", weHold, err)
		case <-time.After(3 * limit):
		}
	}
}

// lockedWriter serialises writes to a builder.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTestLogger(b *strings.Builder, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// rawOpus stands in for media/opus in unit tests: "packets" of 48 kHz
// µ-law, one byte a sample (960 bytes per 20 ms), enough to test the
// plumbing (dynamic payload type, opus/48000/2, the 48 kHz clock,
// resampling).
type rawOpus struct{}

func (rawOpus) Encode(dst []byte, pcm []int16) ([]byte, error) {
	for _, s := range pcm {
		dst = append(dst, audio.EncodeMuLaw(s))
	}
	return dst, nil
}

func (rawOpus) Decode(dst []int16, p []byte) ([]int16, error) {
	for _, b := range p {
		dst = append(dst, audio.DecodeMuLaw(b))
	}
	return dst, nil
}

func (rawOpus) Close() {}

var fakeOpus = &OpusCodec{
	NewEncoder: func() (OpusEncoder, error) { return rawOpus{}, nil },
	NewDecoder: func() (OpusDecoder, error) { return rawOpus{}, nil },
}

// TestOpusCall: with an Opus coder supplied, Opus is offered as
// "opus/48000/2" on payload type 111 and sent with a 48 kHz clock (960
// ticks per 20 ms); the tones cross.
func TestOpusCall(t *testing.T) {
	alice := newHandler(t, Config{Codecs: []Codec{Opus, PCMU}, Opus: fakeOpus})
	bob := newHandler(t, Config{Codecs: []Codec{Opus, PCMU}, Opus: fakeOpus})
	offer, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
	assert.Contains(t, offer, " RTP/AVP 111 0 101\r\n")
	assert.Contains(t, offer, "a=rtpmap:111 opus/48000/2\r\n")
	assert.Contains(t, answer, " RTP/AVP 111 0 101\r\n")
	var mu sync.Mutex
	var steps []uint32
	var last uint32
	bob.OnRTP(func(p *prtp.Packet) {
		mu.Lock()
		if p.PayloadType == 111 {
			if last != 0 {
				steps = append(steps, p.Timestamp-last)
			}
			last = p.Timestamp
		}
		mu.Unlock()
	})
	hearEachOther(t, alice, bob)
	assert.Equal(t, Opus, alice.Stats().Codec)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, steps)
	for _, s := range steps {
		assert.Equal(t, uint32(960), s)
	}
}

// TestOpusNeedsCoder: without a working Opus coder the handler never
// offers or answers Opus (it could not send it); Opus alone is refused.
func TestOpusNeedsCoder(t *testing.T) {
	broken := &OpusCodec{
		NewEncoder: func() (OpusEncoder, error) { return nil, fmt.Errorf("no libopus") },
		NewDecoder: func() (OpusDecoder, error) { return nil, fmt.Errorf("no libopus") },
	}
	for _, o := range []*OpusCodec{nil, broken} {
		alice := newHandler(t, Config{Codecs: []Codec{Opus, PCMU}, Opus: o})
		d, err := alice.GetDescription(ctx, media.Options{})
		require.NoError(t, err)
		assert.NotContains(t, string(d.Body), "opus")
		assert.Contains(t, string(d.Body), " RTP/AVP 0 101\r\n")
		_, err = New(Config{Codecs: []Codec{Opus}, Opus: o})
		assert.Error(t, err)
	}
	bob := newHandler(t, Config{Codecs: []Codec{Opus, PCMU}})
	err := bob.SetDescription(ctx, sdpDesc("v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
		"m=audio 4000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2"), media.Options{})
	assert.ErrorIs(t, err, media.ErrNotAcceptable)
}

// TestMediaTimeoutArmedByFirstPacket: a peer that has sent nothing yet
// (a call ringing without early media) is not timed out.
func TestMediaTimeoutArmedByFirstPacket(t *testing.T) {
	const limit = 200 * time.Millisecond
	alice := newHandler(t, Config{MediaTimeout: limit})
	fails := make(chan error, 1)
	alice.OnFailure(func(err error) { fails <- err })
	_, err := alice.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	require.NoError(t, alice.SetDescription(ctx, sdpDesc("v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-",
		"c=IN IP4 127.0.0.1", "t=0 0", "m=audio 9 RTP/AVP 0"), media.Options{}))
	select {
	case err := <-fails:
		t.Fatalf("timed out a silent peer: %v", err)
	case <-time.After(4 * limit):
	}
}
