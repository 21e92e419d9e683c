package interop

import (
	"context"
	"encoding/base64"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/audio"
	"github.com/sipua/sip/media/opus"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/transport"
)

// Trunk-grade media with baresip (issue 20): SDES-SRTP, G.722, the media
// timeout and call quality, each call through Kamailio over UDP with our
// UserAgent on media/rtp.

// trunkUser starts one of our UserAgents registered with Kamailio over
// UDP whose calls' media are media/rtp with cfg (on 127.0.0.1, RTCP every
// 500 ms), wrapped by wrap when it is set.
func trunkUser(t *testing.T, k *Kamailio, user string, cfg rtp.Config, d sip.UserAgentDelegate,
	wrap func(media.Handler) media.Handler) *sip.UserAgent {
	t.Helper()
	cfg.IP = net.IPv4(127, 0, 0, 1)
	if cfg.RTCPInterval == 0 {
		cfg.RTCPInterval = 500 * time.Millisecond
	}
	f := rtp.NewFactory(cfg)
	if wrap != nil {
		inner := f
		f = func(info media.SessionInfo) (media.Handler, error) {
			h, err := inner(info)
			if err != nil {
				return nil, err
			}
			return wrap(h), nil
		}
	}
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: Users[user],
		Transport:             sip.TransportOptions{Server: server(k, transport.UDP)},
		MediaFactory:          f,
		Delegate:              d,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	return ua
}

// toneCounter counts the frames a handler decodes and those in which a
// tone of hz dominates.
type toneCounter struct {
	hz           float64
	mu           sync.Mutex
	frames, tone int
}

func listen(h *rtp.Handler, hz float64) *toneCounter {
	c := &toneCounter{hz: hz}
	h.OnAudio(func(pcm []int16) {
		r := audio.ToneRatio(pcm, hz, rtp.SampleRate)
		c.mu.Lock()
		c.frames++
		if r > 0.5 {
			c.tone++
		}
		c.mu.Unlock()
	})
	return c
}

func (c *toneCounter) counts() (frames, tone int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames, c.tone
}

// handlerOf returns the media/rtp handler of a session, through a
// test wrapper.
func handlerOf(t *testing.T, s *sip.Session) *rtp.Handler {
	t.Helper()
	switch h := s.MediaHandler().(type) {
	case *rtp.Handler:
		return h
	case *badKey:
		return h.Handler
	}
	t.Fatalf("media handler %T", s.MediaHandler())
	return nil
}

// trunkCall places a call to baresip (outgoing) or waits for baresip's
// call to us, and returns our session once baresip has it established.
func trunkCall(t *testing.T, ctx context.Context, k *Kamailio, b *Baresip, ua *sip.UserAgent,
	invs <-chan *sip.Invitation, outgoing bool) *sip.Session {
	t.Helper()
	if outgoing {
		call, err := sip.NewInviter(ua, b.AOR, sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), k.Log())
		b.Expect(t, "CALL_ESTABLISHED", "direction", "incoming")
		return call.Session
	}
	b.Do(t, "dial", "sip:bob@"+Domain)
	select {
	case inv := <-invs:
		b.Expect(t, "CALL_ESTABLISHED", "direction", "outgoing")
		return inv.Session
	case <-ctx.Done():
		t.Fatalf("no INVITE from baresip\n%s", k.Log())
	}
	return nil
}

// echoed sends our 1000 Hz tone to baresip, which sends back what it
// decodes, and waits until both ends have counted ~2 s of audio and our
// handler has recognized the tone in what came back (it went through
// baresip's decryption/decoding and encoding and ours).
func echoed(t *testing.T, ctx context.Context, b *Baresip, h *rtp.Handler, tc *toneCounter) {
	t.Helper()
	start := time.Now()
	for {
		bSent, bReceived, err := b.AudioPackets(ctx)
		require.NoError(t, err)
		st := h.Stats()
		frames, tone := tc.counts()
		if time.Since(start) >= 2*time.Second && st.PacketsReceived >= 75 && bReceived >= 75 && tone >= 25 {
			t.Logf("after %v: our UA sent %d RTP packets, received %d (%d failed SRTP), codec %v, SRTP %q; "+
				"baresip sent %d, received %d; our 1000 Hz tone came back in %d of %d frames",
				time.Since(start).Round(time.Millisecond), st.PacketsSent, st.PacketsReceived, st.SRTPFailed,
				st.Codec, st.SRTP, bSent, bReceived, tone, frames)
			return
		}
		if ctx.Err() != nil || time.Since(start) > 8*time.Second {
			t.Fatalf("after %v: ours sent %d received %d (SRTP failed %d), tone in %d of %d frames; baresip sent %d received %d\n%s",
				time.Since(start), st.PacketsSent, st.PacketsReceived, st.SRTPFailed, tone, frames, bSent, bReceived,
				tail(b.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// byeBaresip ends the call from our side and waits for baresip to see it.
func byeBaresip(t *testing.T, ctx context.Context, b *Baresip, s *sip.Session) {
	t.Helper()
	require.NoError(t, s.Bye(ctx))
	b.Expect(t, "CALL_CLOSED", "param", "Connection reset by peer")
}

// TestTrunkSRTP: SDES-SRTP with baresip (srtp module, mediaenc
// srtp-mand: RTP/SAVP, AES_CM_128_HMAC_SHA1_80) in both call directions,
// our side with SRTP required. baresip echoes what it decrypts and
// decodes; our handler recognizes its 1000 Hz tone after decrypting the
// echo, no packet fails authentication, and an RFC 4733 digit we send
// inside SRTP reaches baresip. The negative control: when
// the key baresip is given is not the one we send with, baresip can
// decrypt nothing of ours and echoes no tone, while our handler still
// decrypts baresip's packets.
func TestTrunkSRTP(t *testing.T) {
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto, Modules: []string{"srtp"},
		MediaEnc: "srtp-mand", Echo: true})
	invs := make(chan *sip.Invitation, 1)
	var mu sync.Mutex
	var tc *toneCounter
	setup := func(h *rtp.Handler, _ media.SessionInfo) {
		h.SetAudioSource(rtp.Tone(1000))
		mu.Lock()
		tc = listen(h, 1000)
		mu.Unlock()
	}
	var wrongKey atomic.Bool
	ua := trunkUser(t, k, "bob", rtp.Config{SRTP: rtp.SRTPRequired, Setup: setup},
		sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}},
		func(h media.Handler) media.Handler {
			if wrongKey.Load() {
				return &badKey{Handler: h.(*rtp.Handler)}
			}
			return h
		})
	counter := func() *toneCounter { mu.Lock(); defer mu.Unlock(); return tc }

	for _, outgoing := range []bool{true, false} {
		name := "baresip_calls_ua"
		if outgoing {
			name = "ua_calls_baresip"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := trunkCall(t, ctx, k, b, ua, invs, outgoing)
			h := handlerOf(t, s)
			echoed(t, ctx, b, h, counter())
			st := h.Stats()
			assert.Equal(t, rtp.SRTPAES128SHA80, st.SRTP)
			assert.Zero(t, st.SRTPFailed)
			assert.Equal(t, rtp.PCMU, st.Codec)
			// RFC 4733 DTMF inside SRTP: baresip decrypts and reports it.
			callID, _, _ := s.DialogID()
			require.NoError(t, s.SendDTMF(ctx, "5", 160*time.Millisecond, sip.DTMFRTP))
			b.Expect(t, "CALL_DTMF_START", "id", callID, "param", "5")
			byeBaresip(t, ctx, b, s)
		})
	}

	t.Run("negative_control_wrong_key", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		wrongKey.Store(true)
		defer wrongKey.Store(false)
		s := trunkCall(t, ctx, k, b, ua, invs, true)
		h := handlerOf(t, s)
		time.Sleep(2500 * time.Millisecond)
		st := h.Stats()
		frames, tone := counter().counts()
		_, bReceived, err := b.AudioPackets(ctx)
		require.NoError(t, err)
		t.Logf("with a wrong key at baresip: our UA sent %d packets, received and decrypted %d (%d failed); "+
			"baresip counted %d received; our tone came back in %d of %d frames",
			st.PacketsSent, st.PacketsReceived, st.SRTPFailed, bReceived, tone, frames)
		assert.Greater(t, st.PacketsSent, uint64(75))
		assert.Greater(t, st.PacketsReceived, uint64(75), "baresip's own packets decrypt fine")
		assert.Greater(t, frames, 50)
		assert.Zero(t, tone, "baresip decoded our tone without our key")
		byeBaresip(t, ctx, b, s)
	})
	noRouteSetViolations(t, k)
}

// badKey is a media/rtp handler whose descriptions carry key material
// other than the one it sends with (the negative control).
type badKey struct{ *rtp.Handler }

var inlineKey = regexp.MustCompile(`inline:[A-Za-z0-9+/=]+`)

func (h *badKey) GetDescription(ctx context.Context, o media.Options) (media.Description, error) {
	d, err := h.Handler.GetDescription(ctx, o)
	wrong := make([]byte, 30)
	for i := range wrong {
		wrong[i] = byte(3*i + 1)
	}
	d.Body = inlineKey.ReplaceAll(d.Body, []byte("inline:"+base64.StdEncoding.EncodeToString(wrong)))
	return d, err
}

// TestTrunkG722: G.722 with baresip (g722 module, audio_codecs
// G722/16000/1) in both call directions: a=rtpmap:9 G722/8000 both ways,
// and our 1000 Hz tone, encoded in G.722 by us, decoded and re-encoded by
// baresip, is recognized after decoding at our end.
func TestTrunkG722(t *testing.T) {
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto, Modules: []string{"g722"},
		AudioCodecs: "G722/16000/1", Echo: true})
	invs := make(chan *sip.Invitation, 1)
	var mu sync.Mutex
	var tc *toneCounter
	ua := trunkUser(t, k, "bob", rtp.Config{Codecs: []rtp.Codec{rtp.G722, rtp.PCMU}, Setup: func(h *rtp.Handler, _ media.SessionInfo) {
		h.SetAudioSource(rtp.Tone(1000))
		mu.Lock()
		tc = listen(h, 1000)
		mu.Unlock()
	}}, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}}, nil)
	for _, outgoing := range []bool{true, false} {
		name := "baresip_calls_ua"
		if outgoing {
			name = "ua_calls_baresip"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := trunkCall(t, ctx, k, b, ua, invs, outgoing)
			h := handlerOf(t, s)
			mu.Lock()
			c := tc
			mu.Unlock()
			echoed(t, ctx, b, h, c)
			assert.Equal(t, rtp.G722, h.Stats().Codec)
			byeBaresip(t, ctx, b, s)
		})
	}
	noRouteSetViolations(t, k)
}

// TestTrunkMediaTimeout: baresip answers our call, then freezes
// (SIGSTOP, as a crashed phone): with a 1.5 s media timeout our call ends
// by itself with EndMediaTimeout within that bound (plus one playout
// tick), and a BYE, which baresip handles once resumed.
func TestTrunkMediaTimeout(t *testing.T) {
	const limit = 1500 * time.Millisecond
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto})
	ua := trunkUser(t, k, "bob", rtp.Config{MediaTimeout: limit}, sip.UserAgentDelegate{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := trunkCall(t, ctx, k, b, ua, nil, true)
	h := handlerOf(t, s)
	require.Eventually(t, func() bool { return h.Stats().PacketsReceived > 25 }, 5*time.Second, 50*time.Millisecond)

	require.NoError(t, b.Signal(syscall.SIGSTOP))
	frozen := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = b.Signal(syscall.SIGCONT)
		}
	}()
	select {
	case <-s.Done():
	case <-time.After(limit + 3*time.Second):
		t.Fatalf("the call is still up %v after baresip froze", time.Since(frozen))
	}
	took := time.Since(frozen)
	t.Logf("call ended %v after baresip froze: %v (%v)", took.Round(time.Millisecond), s.EndReason(), s.EndReason().Err)
	assert.Equal(t, sip.EndMediaTimeout, s.EndReason().Cause)
	assert.ErrorIs(t, s.EndReason().Err, media.ErrMediaTimeout)
	assert.Less(t, took, limit+500*time.Millisecond)
	assert.GreaterOrEqual(t, took, limit-100*time.Millisecond)

	require.NoError(t, b.Signal(syscall.SIGCONT))
	resumed = true
	b.Expect(t, "CALL_CLOSED", "param", "Connection reset by peer")
}

// TestTrunkStats: after a few seconds of a call with baresip (which
// sends RTCP receiver and sender reports), our handler's Stats show the
// call's quality: jitter measured on baresip's stream, loss both ways
// (none on loopback), the round-trip time from baresip's reports on our
// stream, and an E-model MOS estimate of a clean call.
func TestTrunkStats(t *testing.T) {
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto})
	ua := trunkUser(t, k, "bob", rtp.Config{}, sip.UserAgentDelegate{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	s := trunkCall(t, ctx, k, b, ua, nil, true)
	h := handlerOf(t, s)
	var st rtp.Stats
	// baresip reports about every 5 s; its first report may come before
	// it has our first SR (no LSR, no RTT yet), so allow three reports.
	require.Eventually(t, func() bool {
		st = h.Stats()
		return st.PacketsReceived > 100 && st.RoundTripTime > 0 && st.RemoteReport
	}, 20*time.Second, 100*time.Millisecond, "no RTT from baresip's reports: %+v", st)
	t.Logf("our stats: received %d, lost %d (%.3f), jitter %v; baresip's report on our stream: lost %d (%.3f), jitter %v; "+
		"RTT %v; RTCP sent %d, received %d; MOS %.2f", st.PacketsReceived, st.PacketsLost, st.LossRate, st.Jitter,
		st.RemotePacketsLost, st.RemoteLossRate, st.RemoteJitter, st.RoundTripTime, st.RTCPSent, st.RTCPReceived, st.MOS)
	assert.Greater(t, st.Jitter, time.Duration(0), "jitter is measured")
	assert.Less(t, st.Jitter, 30*time.Millisecond)
	assert.LessOrEqual(t, st.PacketsLost, int64(2))
	assert.LessOrEqual(t, st.RemotePacketsLost, int64(2))
	assert.Less(t, st.RoundTripTime, 50*time.Millisecond)
	assert.Greater(t, st.MOS, 4.0)
	assert.LessOrEqual(t, st.MOS, 4.5)
	byeBaresip(t, ctx, b, s)
}

// libOpus is media/rtp's Opus coder from media/opus (libopus through
// cgo): 48 kHz mono.
var libOpus = &rtp.OpusCodec{
	NewEncoder: func() (rtp.OpusEncoder, error) {
		e, err := opus.NewEncoder(opus.EncoderOptions{Channels: 1})
		if err != nil {
			return nil, err
		}
		return e, nil
	},
	NewDecoder: func() (rtp.OpusDecoder, error) {
		d, err := opus.NewDecoder(1)
		if err != nil {
			return nil, err
		}
		return d, nil
	},
}

// TestTrunkOpus: Opus with baresip (opus module, audio_codecs
// opus/48000/2) in both call directions, our side encoding and decoding
// with libopus through media/opus: opus/48000/2 negotiated, and our
// 1000 Hz tone, Opus-encoded by us, decoded and re-encoded by baresip, is
// recognized after decoding at our end.
func TestTrunkOpus(t *testing.T) {
	require.NoError(t, opus.Available(), "libopus (interop/install.sh installs libopus-dev)")
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto, Modules: []string{"opus"},
		AudioCodecs: "opus/48000/2", Echo: true})
	invs := make(chan *sip.Invitation, 1)
	var mu sync.Mutex
	var tc *toneCounter
	ua := trunkUser(t, k, "bob", rtp.Config{Codecs: []rtp.Codec{rtp.Opus, rtp.PCMU}, Opus: libOpus,
		Setup: func(h *rtp.Handler, _ media.SessionInfo) {
			h.SetAudioSource(rtp.Tone(1000))
			mu.Lock()
			tc = listen(h, 1000)
			mu.Unlock()
		}}, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}}, nil)
	for _, outgoing := range []bool{true, false} {
		name := "baresip_calls_ua"
		if outgoing {
			name = "ua_calls_baresip"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := trunkCall(t, ctx, k, b, ua, invs, outgoing)
			h := handlerOf(t, s)
			mu.Lock()
			c := tc
			mu.Unlock()
			echoed(t, ctx, b, h, c)
			assert.Equal(t, rtp.Opus, h.Stats().Codec)
			byeBaresip(t, ctx, b, s)
		})
	}
	noRouteSetViolations(t, k)
}

// TestTrunkSRTPOffer: our policy "offer" (RTP/AVP with a=crypto) with a
// baresip that has SRTP optional (mediaenc srtp) gets SRTP in both call
// directions, and with a baresip without the srtp module falls back to
// plain RTP; audio flows every time.
func TestTrunkSRTPOffer(t *testing.T) {
	k := StartKamailio(t)
	invs := make(chan *sip.Invitation, 1)
	ua := trunkUser(t, k, "bob", rtp.Config{SRTP: rtp.SRTPOffer, Setup: func(h *rtp.Handler, _ media.SessionInfo) {
		h.SetAudioSource(rtp.Tone(1000))
	}}, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}}, nil)
	for _, tc := range []struct {
		name     string
		cfg      BaresipConfig
		outgoing bool
		want     rtp.SRTPSuite
	}{
		{"srtp_optional/ua_calls_baresip", BaresipConfig{Modules: []string{"srtp"}, MediaEnc: "srtp"}, true, rtp.SRTPAES128SHA80},
		{"srtp_optional/baresip_calls_ua", BaresipConfig{Modules: []string{"srtp"}, MediaEnc: "srtp"}, false, rtp.SRTPAES128SHA80},
		{"plain/ua_calls_baresip", BaresipConfig{}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.User, cfg.AnswerMode = "alice", BaresipAuto
			b := StartBaresip(t, k, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := trunkCall(t, ctx, k, b, ua, invs, tc.outgoing)
			h := handlerOf(t, s)
			require.Eventually(t, func() bool {
				_, bReceived, err := b.AudioPackets(ctx)
				return err == nil && bReceived >= 50 && h.Stats().PacketsReceived >= 50
			}, 8*time.Second, 100*time.Millisecond)
			st := h.Stats()
			t.Logf("SRTP %q, sent %d, received %d, SRTP failures %d", st.SRTP, st.PacketsSent, st.PacketsReceived, st.SRTPFailed)
			assert.Equal(t, tc.want, st.SRTP)
			assert.Zero(t, st.SRTPFailed)
			byeBaresip(t, ctx, b, s)
		})
	}
}
