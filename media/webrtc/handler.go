// Package webrtc is sipua's WebRTC media.Handler (name it in
// sip.UserAgentOptions.MediaFactory with NewFactory: the root package
// links no media stack and has no default handler): WebRTC media (ICE,
// DTLS-SRTP, RTP/RTCP) on pion/webrtc v4, negotiated by SDP offer/answer
// (RFC 3264) as SIP carries it.
//
// SIP does not trickle candidates, so GetDescription gathers them before
// it returns, within a bound (Config.GatheringTimeout,
// media.Options.GatheringTimeout): a call never hangs on slow gathering.
//
// Audio is offered by default, and video when media.Options.Constraints
// asks for it: in the first exchange or any later one (a re-INVITE adds
// video; one without the constraint makes it inactive, and an answer
// that does not want offered video rejects it with port 0). The codecs
// are PCMU, PCMA and Opus (and telephone-event) for audio, VP8 and H.264
// for video, in that order unless Config.Codecs or media.Options.Codecs
// reorder or narrow them.
//
// Audio goes out from an AudioSource (silence unless one is set) encoded
// as G.711: the first of PCMU and PCMA negotiated in the order of
// preference; none when a peer takes only Opus (an Opus encoder needs
// cgo). Received G.711 is decoded out of a jitter buffer to OnAudio, the
// same callback as media/rtp's, so one recorder serves both handlers;
// every packet is also handed to OnRTP undecoded. DTMF goes out as RFC
// 4733 telephone-event packets on the audio stream and is reported when
// received.
//
// Video goes out from a VideoSource of encoded frames (NewIVFSource for
// VP8 in IVF files, NewH264Source for H.264 Annex-B streams, LoopVideo to
// repeat one), packetized for the codec negotiated and paced by the
// frames' durations; the peer's keyframe requests reach the source when
// it is a KeyframeRequester. Received video goes to a VideoSink
// (NewIVFSink, NewH264Sink write files); the handler asks for a keyframe
// (RTCP PLI) when a sink is set and when packets are lost.
//
// Media failure is reported through media.FailureNotifier (OnFailure):
// ICE failed, DTLS failed, or ICE disconnected longer than
// Config.DisconnectedTimeout; the UserAgent then ends the call. A
// configuration that skips loopback on a host that has nothing else logs
// a warning, since ICE then has no candidate at all.
//
// Hold follows RFC 3264 and RFC 6337: media.Options.Hold makes an offer
// sendonly (inactive when the peer holds too), and an answer takes the
// reverse of the offer's direction, less receiving when on hold.
//
// Remote tracks are read by the handler, which counts their packets and
// bytes (Handler.Stats) and passes each packet to the OnRTP callback.
// Stats name the codec of each direction only when media flow that way,
// and keep the last selected candidate pair after the call ends.
// Config.ICETransportPolicy relay restricts ICE to TURN relays.
package webrtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/audio"
)

const contentTypeSDP = "application/sdp"

// Handler is a media.Handler carrying one session's media over a pion
// PeerConnection, which it creates at the first GetDescription or
// SetDescription. Its methods are safe for concurrent use; callbacks are
// called without the handler's locks held, from pion's or the handler's
// goroutines.
type Handler struct {
	cfg Config
	log *slog.Logger

	negMu sync.Mutex // one offer/answer step at a time

	mu         sync.Mutex
	closed     bool
	done       chan struct{}
	pc         *pion.PeerConnection
	audioTr    *pion.RTPTransceiver
	wantAudio  bool
	wantVideo  bool
	remoteDir  map[string]dir // per mid, as the peer's SDP in force says
	localDir   map[string]dir // per mid, negotiated, our side
	offerDir   map[string]dir // per mid, in our pending offer
	offer      []byte         // our pending offer, as sent
	remoteOrig sdp.Origin     // o= of the peer's SDP in force
	haveRemote bool
	pendingDir map[string]dir // the pending remote offer's directions
	pendingOri sdp.Origin     // and its o=
	repeated   []byte         // the peer's last SDP again, offer or answer: see SetDescription
	audioCodec string
	teOK       bool // telephone-event negotiated

	audio        *audioTrack
	audioCount   counters
	videoCount   counters
	dtmfReceived atomic.Uint64

	video      *videoTrack
	videoTr    *pion.RTPTransceiver // the transceiver our video track is on
	videoOn    bool                 // the exchange in progress or last done wants video
	videoRecv  atomic.Pointer[string]
	videoSSRC  atomic.Uint32 // the remote video track's SSRC, 0 before it starts
	sink       atomic.Pointer[sinkBox]
	kfSent     atomic.Uint64
	kfReceived atomic.Uint64
	lastKFAsk  atomic.Int64 // unix nanoseconds of our last PLI
	onKeyframe atomic.Pointer[func()]
	audioRecv  atomic.Pointer[string]
	onAudio    atomic.Pointer[func([]int16)]
	audioLate  atomic.Uint64 // received audio discarded by the jitter buffer
	play       *playout
	audioOrder []string // lower-case audio codec names, preferred first; set with the PeerConnection
	onFail     atomic.Pointer[func(error)]
	failure    error       // the media failure reported, if any (mu)
	discTimer  *time.Timer // running while ICE is disconnected (mu)
	lastPair   atomic.Pointer[pion.ICECandidatePair]

	onICE   atomic.Pointer[func(pion.ICEConnectionState)]
	onConn  atomic.Pointer[func(pion.PeerConnectionState)]
	onTrack atomic.Pointer[func(*pion.TrackRemote)]
	onRTP   atomic.Pointer[func(*pion.TrackRemote, *rtp.Packet)]
	onDTMF  atomic.Pointer[func(rune, time.Duration)]

	wg sync.WaitGroup // goroutines of this handler

	// closing is held (written) while the PeerConnection closes: pion's
	// GetStats reads state that its close writes without a lock, so
	// Stats takes it (read, never waiting) around GetStats.
	closing sync.RWMutex
}

var _ media.Handler = (*Handler)(nil)

// New returns a handler with no media yet: the PeerConnection comes with
// the first offer or answer.
func New(cfg Config) (*Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	h := &Handler{
		cfg:  cfg,
		log:  log,
		done: make(chan struct{}),
	}
	h.audio = newAudioTrack("sipua-"+hex.EncodeToString(id[:]), &h.audioCount, log, &h.wg)
	h.play = &playout{h: h}
	h.video = newVideoTrack("sipua-"+hex.EncodeToString(id[:]), &h.videoCount, log, &h.wg)
	return h, nil
}

// NewFactory returns a media.Factory making a Handler per session with
// cfg, and calling cfg.Setup with each.
func NewFactory(cfg Config) media.Factory {
	return func(info media.SessionInfo) (media.Handler, error) {
		h, err := New(cfg)
		if err != nil {
			return nil, err
		}
		if info.ID != "" {
			h.log = h.log.With("session", info.ID)
			h.audio.log = h.log
			h.video.log = h.log
		}
		if cfg.Setup != nil {
			cfg.Setup(h, info)
		}
		return h, nil
	}
}

// SetAudioSource sets what the handler sends as audio from the next
// 20 ms frame on; nil sends silence.
func (h *Handler) SetAudioSource(src AudioSource) {
	if src == nil {
		h.audio.src.Store(nil)
		return
	}
	h.audio.src.Store(&sourceBox{src})
}

// OnICEConnectionStateChange sets the function called when the ICE
// connection state changes.
func (h *Handler) OnICEConnectionStateChange(f func(pion.ICEConnectionState)) { h.onICE.Store(&f) }

// OnConnectionStateChange sets the function called when the
// PeerConnection state (ICE and DTLS together) changes.
func (h *Handler) OnConnectionStateChange(f func(pion.PeerConnectionState)) { h.onConn.Store(&f) }

// OnTrack sets the function called when a remote track starts, before
// its first packet is counted.
func (h *Handler) OnTrack(f func(*pion.TrackRemote)) { h.onTrack.Store(&f) }

// OnRTP sets the function called with every RTP packet received, from
// the goroutine reading its track. The packet is not reused.
func (h *Handler) OnRTP(f func(*pion.TrackRemote, *rtp.Packet)) { h.onRTP.Store(&f) }

// OnDTMF sets the function called once per RFC 4733 tone received, when
// its end arrives, with its duration.
func (h *Handler) OnDTMF(f func(tone rune, d time.Duration)) { h.onDTMF.Store(&f) }

// HasDescription reports whether contentType is application/sdp.
func (h *Handler) HasDescription(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && strings.EqualFold(mt, contentTypeSDP)
}

// GetDescription returns an offer when no remote offer is pending, or
// the answer to the remote offer set last. A re-offer asked for while
// the previous one is still unanswered replaces it (that one was
// refused); the first offer asked for again is returned unchanged.
// Candidates are gathered first, for at most the gathering timeout; ctx
// bounds the call too.
func (h *Handler) GetDescription(ctx context.Context, opts media.Options) (media.Description, error) {
	h.negMu.Lock()
	defer h.negMu.Unlock()
	pc, err := h.peer(opts)
	if err != nil {
		return media.Description{}, err
	}
	h.mu.Lock()
	h.videoOn = opts.Constraints.Video
	h.mu.Unlock()
	if opts.Constraints.Video && pc.SignalingState() != pion.SignalingStateHaveLocalOffer {
		if err := h.addVideo(pc); err != nil {
			return media.Description{}, h.closedOr(err)
		}
	}
	var body []byte
	switch st := pc.SignalingState(); st {
	case pion.SignalingStateHaveLocalOffer:
		if pc.CurrentRemoteDescription() == nil {
			// The first offer, asked for again (e.g. an INVITE resent
			// with credentials): the same, finished if an earlier call
			// gave up gathering.
			h.mu.Lock()
			body = h.offer
			h.mu.Unlock()
			if body == nil {
				body, err = h.finishOffer(ctx, pc, opts)
			}
			break
		}
		// Our re-offer got no answer (the request was refused, 488 or
		// 491): a new offer replaces it.
		if err = h.dropOffer(pc); err == nil {
			body, err = h.createOffer(ctx, pc, opts)
		}
	case pion.SignalingStateHaveRemoteOffer:
		body, err = h.createAnswer(ctx, pc, opts)
	case pion.SignalingStateStable:
		h.mu.Lock()
		repeated := h.repeated
		h.repeated = nil
		h.mu.Unlock()
		if repeated == nil {
			body, err = h.createOffer(ctx, pc, opts)
			break
		}
		// The repeated SDP was an unchanged re-offer: answer it.
		s, perr := parseSDP(repeated)
		if perr != nil {
			return media.Description{}, perr
		}
		if err = h.applyOffer(pc, repeated, s); err == nil {
			if opts.Constraints.Video {
				err = h.addVideo(pc)
			}
			if err == nil {
				body, err = h.createAnswer(ctx, pc, opts)
			}
		}
	default:
		err = fmt.Errorf("webrtc: cannot describe in signaling state %s", st)
	}
	if err != nil {
		return media.Description{}, h.closedOr(err)
	}
	return media.Description{ContentType: contentTypeSDP, Body: body}, nil
}

// SetDescription applies the peer's SDP: the answer to our pending
// offer, or else an offer, whose answer GetDescription then returns. An
// SDP with a=setup:actpass is always an offer (RFC 5763 §5, JSEP): one
// crossing our pending offer replaces it, as does one arriving while an
// earlier remote offer is still unanswered.
//
// An SDP that is not surely an offer and has the same o= version as the
// peer's last one changes nothing (RFC 3264 §8), but may be either an
// answer repeated (a 183's, then the 200's) or an unchanged re-offer (a
// session refresh): it is kept aside, and answered only if
// GetDescription comes next; another SetDescription drops it.
//
// It returns an error wrapping media.ErrUnsupportedContent for a body
// other than SDP, and media.ErrNotAcceptable for an offer with no usable
// media (no wanted kind, no codec of ours, no DTLS-SRTP) or an SDP pion
// refuses; a refused re-offer leaves the session as it was.
func (h *Handler) SetDescription(ctx context.Context, d media.Description, opts media.Options) error {
	if !h.HasDescription(d.ContentType) {
		return fmt.Errorf("%w: %s", media.ErrUnsupportedContent, d.ContentType)
	}
	s, err := parseSDP(d.Body)
	if err != nil {
		return err
	}
	h.negMu.Lock()
	defer h.negMu.Unlock()
	pc, err := h.peer(opts)
	if err != nil {
		return err
	}
	offer := isOffer(s)
	switch st := pc.SignalingState(); st {
	case pion.SignalingStateHaveLocalOffer:
		if !offer {
			h.mu.Lock()
			h.repeated = nil
			h.mu.Unlock()
			return h.closedOr(h.applyAnswer(pc, d.Body, s))
		}
		// An offer crossing ours (glare), or coming after ours was
		// refused: ours is dropped.
		if err := h.dropOffer(pc); err != nil {
			return h.closedOr(err)
		}
	case pion.SignalingStateHaveRemoteOffer:
		// The pending offer was refused by the application: this one
		// replaces it.
		if err := h.dropRemoteOffer(pc); err != nil {
			return h.closedOr(err)
		}
	case pion.SignalingStateStable:
	default:
		return fmt.Errorf("webrtc: remote description in signaling state %s", st)
	}
	h.mu.Lock()
	h.repeated = nil
	if !offer && h.haveRemote && s.Origin.SessionID == h.remoteOrig.SessionID &&
		s.Origin.SessionVersion == h.remoteOrig.SessionVersion {
		h.repeated = d.Body
	}
	repeated := h.repeated != nil
	h.mu.Unlock()
	if repeated {
		return nil
	}
	return h.closedOr(h.applyOffer(pc, d.Body, s))
}

// dropOffer abandons our unanswered re-offer. pion has no rollback, so
// the offer is closed with the peer's SDP in force as its answer: the
// session stays as it was.
func (h *Handler) dropOffer(pc *pion.PeerConnection) error {
	cur := pc.CurrentRemoteDescription()
	if cur == nil {
		return errors.New("webrtc: an offer crosses our first offer")
	}
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: cur.SDP}); err != nil {
		return fmt.Errorf("webrtc: abandon our offer: %w", err)
	}
	h.mu.Lock()
	h.offer = nil
	h.mu.Unlock()
	return nil
}

// dropRemoteOffer abandons a remote offer that will not be answered.
// pion has no rollback, so it is answered without the answer being sent;
// the handler's own view of the session (directions, codec) is kept.
func (h *Handler) dropRemoteOffer(pc *pion.PeerConnection) error {
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		return fmt.Errorf("webrtc: abandon the remote offer: %w", err)
	}
	h.mu.Lock()
	h.pendingDir = nil
	h.mu.Unlock()
	return nil
}

// SendDTMF queues tones to send as RFC 4733 events of the given length
// each (0: 100 ms; clamped to 40 ms … 6 s), 80 ms apart; "," is a
// two-second pause. It returns at once; tones wait while the audio is
// not being sent (on hold). It returns an error wrapping media.ErrNotSupported
// when the peer did not take telephone-event.
func (h *Handler) SendDTMF(tones string, duration time.Duration) error {
	if duration == 0 {
		duration = dtmfDefault
	}
	duration = min(max(duration, dtmfMinDuration), dtmfMaxDuration)
	samples := int(duration * SampleRate / time.Second)
	q := make([]tone, 0, len(tones))
	for _, c := range tones {
		if c == ',' {
			q = append(q, tone{pause: true})
			continue
		}
		code, ok := audio.DTMFCode(c)
		if !ok {
			return fmt.Errorf("webrtc: invalid DTMF tone %q", c)
		}
		q = append(q, tone{code: code, samples: samples})
	}
	h.mu.Lock()
	closed, te := h.closed, h.teOK
	h.mu.Unlock()
	switch {
	case closed:
		return media.ErrClosed
	case !te:
		return fmt.Errorf("%w: telephone-event not negotiated", media.ErrNotSupported)
	}
	h.audio.queue(q)
	return nil
}

// Close ends the media and waits for the handler's goroutines. It may be
// called more than once; later calls return nil.
func (h *Handler) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.done)
	pc := h.pc
	if h.discTimer != nil {
		h.discTimer.Stop()
		h.discTimer = nil
	}
	h.mu.Unlock()

	var err error
	if pc != nil {
		h.closing.Lock()
		if err = pc.GracefulClose(); err != nil {
			err = fmt.Errorf("webrtc: close: %w", err)
		}
		h.closing.Unlock()
	}
	h.audio.close()
	h.video.close()
	h.play.close()
	h.wg.Wait()
	return err
}

// closedOr returns media.ErrClosed for an error met while the handler
// was being closed, else err.
func (h *Handler) closedOr(err error) error {
	if err == nil {
		return nil
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed && !errors.Is(err, media.ErrClosed) {
		return fmt.Errorf("%w (%w)", media.ErrClosed, err)
	}
	return err
}

// peer returns the PeerConnection, creating it for the constraints of
// the first exchange.
func (h *Handler) peer(opts media.Options) (*pion.PeerConnection, error) {
	c := opts.Constraints
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, media.ErrClosed
	}
	if h.pc != nil {
		return h.pc, nil
	}
	h.wantAudio = c.Audio || !c.Video
	h.wantVideo = c.Video

	me := &pion.MediaEngine{}
	audioOrder := media.CodecOrder(media.CodecOrder(defaultAudioCodecs, h.cfg.Codecs), opts.Codecs)
	videoOrder := media.CodecOrder(media.CodecOrder(defaultVideoCodecs, h.cfg.Codecs), opts.Codecs)
	h.audioOrder = h.audioOrder[:0]
	for _, n := range audioOrder {
		h.audioOrder = append(h.audioOrder, strings.ToLower(n))
	}
	h.audio.setPreference(audioOrder)
	if err := registerCodecs(me, h.wantAudio, true, audioOrder, videoOrder); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	lf := logFactory{h.log}
	if err := pion.RegisterDefaultInterceptorsWithOptions(me, ir, pion.WithInterceptorLoggerFactory(lf)); err != nil {
		return nil, fmt.Errorf("webrtc: interceptors: %w", err)
	}
	api := pion.NewAPI(pion.WithMediaEngine(me), pion.WithInterceptorRegistry(ir),
		pion.WithSettingEngine(h.cfg.settingEngine(h.log)))
	h.cfg.warnLoopback(h.log, onlyLoopback)
	pc, err := api.NewPeerConnection(pion.Configuration{ICEServers: h.cfg.ICEServers,
		ICETransportPolicy: h.cfg.ICETransportPolicy})
	if err != nil {
		return nil, fmt.Errorf("webrtc: new peer connection: %w", err)
	}
	h.notePairs(pc)
	pc.OnICEConnectionStateChange(func(s pion.ICEConnectionState) {
		h.log.Debug("ICE connection state", "state", s)
		h.iceState(s)
		if f := h.onICE.Load(); f != nil && *f != nil {
			(*f)(s)
		}
	})
	pc.OnConnectionStateChange(func(s pion.PeerConnectionState) {
		h.log.Debug("connection state", "state", s)
		if s == pion.PeerConnectionStateFailed && pc.ICEConnectionState() != pion.ICEConnectionStateFailed {
			h.fail(fmt.Errorf("webrtc: DTLS failed: %w", media.ErrICEFailed))
		}
		if f := h.onConn.Load(); f != nil && *f != nil {
			(*f)(s)
		}
	})
	pc.OnTrack(h.readTrack)
	if h.wantAudio {
		tr, err := pc.AddTransceiverFromTrack(h.audio,
			pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendrecv})
		if err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("webrtc: audio transceiver: %w", err)
		}
		h.audioTr = tr
		sender := tr.Sender()
		h.wg.Add(1)
		go func() { // RTCP for the sender's interceptors (reports, NACK)
			defer h.wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	h.pc = pc
	return pc, nil
}

// The codecs a handler knows, in its default order of preference
// (Config.Codecs and media.Options.Codecs reorder and narrow them).
var (
	defaultAudioCodecs = []string{"PCMU", "PCMA", "opus"}
	defaultVideoCodecs = []string{"VP8", "H264"}
)

// registerCodecs registers the codecs of the wanted kinds, in the given
// order of preference, and telephone-event.
func registerCodecs(me *pion.MediaEngine, audio, video bool, audioOrder, videoOrder []string) error {
	fb := []pion.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
		{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	known := map[string][]pion.RTPCodecParameters{
		"pcmu": {{PayloadType: 0, RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000}}},
		"pcma": {{PayloadType: 8, RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypePCMA, ClockRate: 8000}}},
		"opus": {{PayloadType: 111, RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypeOpus, ClockRate: 48000,
			Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}}},
		"vp8": {{PayloadType: 96, RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: fb}}},
		"h264": {
			{PayloadType: 102, RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}},
			{PayloadType: 104, RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: fb}},
		},
	}
	register := func(kind pion.RTPCodecType, names []string) error {
		for _, n := range names {
			for _, p := range known[strings.ToLower(n)] {
				if err := me.RegisterCodec(p, kind); err != nil {
					return fmt.Errorf("webrtc: register %s: %w", p.MimeType, err)
				}
			}
		}
		return nil
	}
	if audio {
		if err := register(pion.RTPCodecTypeAudio, audioOrder); err != nil {
			return err
		}
		te := pion.RTPCodecParameters{PayloadType: 101, RTPCodecCapability: pion.RTPCodecCapability{
			MimeType: mimeTelephoneEvent, ClockRate: 8000, SDPFmtpLine: "0-15"}}
		if err := me.RegisterCodec(te, pion.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("webrtc: register %s: %w", te.MimeType, err)
		}
	}
	if video {
		return register(pion.RTPCodecTypeVideo, videoOrder)
	}
	return nil
}

// capability is what this handler can do on an m-line: send and receive
// on the audio track's; on video, nothing unless the exchange wants
// video, else send and receive on our video track's when a video source
// is set, receive only otherwise; receive only on the others.
func (h *Handler) capability(m, kind string) dir {
	if h.audioTr != nil && h.audioTr.Mid() == m {
		return dirSendRecv
	}
	if kind == "video" {
		h.mu.Lock()
		on, tr := h.videoOn, h.videoTr
		h.mu.Unlock()
		switch {
		case !on:
			return dirInactive
		case tr != nil && tr.Mid() == m && h.video.src.Load() != nil:
			return dirSendRecv
		}
	}
	return dirRecv
}

func (h *Handler) createOffer(ctx context.Context, pc *pion.PeerConnection, opts media.Options) ([]byte, error) {
	var oo *pion.OfferOptions
	if opts.ICERestart {
		// New ICE credentials: the peer gathers and checks again, e.g.
		// after our network path changed (RFC 8445 §9).
		oo = &pion.OfferOptions{ICERestart: true}
	}
	offer, err := pc.CreateOffer(oo)
	if err != nil {
		return nil, fmt.Errorf("webrtc: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("webrtc: set local offer: %w", err)
	}
	return h.finishOffer(ctx, pc, opts)
}

// finishOffer waits for the candidates of the offer set locally and
// returns it, with the directions the options ask for.
func (h *Handler) finishOffer(ctx context.Context, pc *pion.PeerConnection, opts media.Options) ([]byte, error) {
	gathered := pion.GatheringCompletePromise(pc)
	if err := h.waitGathering(ctx, pc, gathered, h.cfg.gatheringTimeout(opts)); err != nil {
		return nil, err
	}
	s, err := parseSDP([]byte(pc.LocalDescription().SDP))
	if err != nil {
		return nil, fmt.Errorf("webrtc: own offer: %w", err)
	}
	h.mu.Lock()
	peerDir := h.remoteDir
	h.mu.Unlock()
	dirs := map[string]dir{}
	for i, md := range s.MediaDescriptions {
		if md.MediaName.Port.Value == 0 || !isRTPMedia(md) {
			continue
		}
		m := mid(md, i)
		d := h.capability(m, md.MediaName.Media)
		if opts.Hold {
			d &^= dirRecv
			if pd, ok := peerDir[m]; ok && pd&dirRecv == 0 {
				d = dirInactive // the peer holds too (RFC 6337 §5.3)
			}
		}
		setMediaDir(md, d)
		dirs[m] = d
	}
	body, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("webrtc: marshal offer: %w", err)
	}
	h.mu.Lock()
	h.offerDir, h.offer = dirs, body
	h.mu.Unlock()
	return body, nil
}

func (h *Handler) createAnswer(ctx context.Context, pc *pion.PeerConnection, opts media.Options) ([]byte, error) {
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("webrtc: create answer: %w", err)
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return nil, fmt.Errorf("webrtc: set local answer: %w", err)
	}
	if err := h.waitGathering(ctx, pc, gathered, h.cfg.gatheringTimeout(opts)); err != nil {
		return nil, err
	}
	s, err := parseSDP([]byte(pc.LocalDescription().SDP))
	if err != nil {
		return nil, fmt.Errorf("webrtc: own answer: %w", err)
	}
	h.mu.Lock()
	peerDir := h.pendingDir
	h.remoteDir, h.remoteOrig, h.haveRemote = h.pendingDir, h.pendingOri, true
	h.pendingDir = nil
	h.mu.Unlock()
	dirs := map[string]dir{}
	audioMid := ""
	if h.audioTr != nil {
		audioMid = h.audioTr.Mid()
	}
	codecName, te := "", false
	h.mu.Lock()
	videoOn := h.videoOn
	h.mu.Unlock()
	var rejected []string
	for i, md := range s.MediaDescriptions {
		if md.MediaName.Port.Value == 0 || !isRTPMedia(md) {
			continue
		}
		m := mid(md, i)
		if md.MediaName.Media == "video" && !videoOn {
			// Video not wanted: the m-line is rejected (RFC 3264 §6).
			md.MediaName.Port.Value = 0
			setMediaDir(md, dirInactive)
			dirs[m] = dirInactive
			rejected = append(rejected, m)
			continue
		}
		d := h.capability(m, md.MediaName.Media) & peerDir[m].reverse()
		if opts.Hold {
			d &^= dirRecv
		}
		if m == audioMid {
			preferCodecs(md, h.audioOrder)
			name, encodable, _ := sendCodec(md, h.audioOrder)
			if !encodable {
				d &^= dirSend
			}
			codecName, te = name, hasTelephoneEvent(md)
		}
		setMediaDir(md, d)
		dirs[m] = d
	}
	removeFromBundle(s, rejected)
	body, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("webrtc: marshal answer: %w", err)
	}
	h.completeExchange(dirs, audioMid, codecName, te)
	return body, nil
}

func (h *Handler) applyOffer(pc *pion.PeerConnection, body []byte, s *sdp.SessionDescription) error {
	h.mu.Lock()
	audio, video := h.wantAudio, h.wantVideo
	h.mu.Unlock()
	// Once the call has video, a re-offer may carry video alone.
	h.mu.Lock()
	video = video || h.videoTr != nil
	h.mu.Unlock()
	if err := checkOffer(s, audio, video); err != nil {
		return err
	}
	text, err := forPion(body)
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: text}); err != nil {
		if pc.SignalingState() == pion.SignalingStateHaveRemoteOffer {
			_ = h.dropRemoteOffer(pc)
		}
		return fmt.Errorf("%w: %w", media.ErrNotAcceptable, err)
	}
	h.mu.Lock()
	h.pendingDir, h.pendingOri = dirsOf(s), s.Origin
	h.mu.Unlock()
	return nil
}

func (h *Handler) applyAnswer(pc *pion.PeerConnection, body []byte, s *sdp.SessionDescription) error {
	text, err := forPion(body)
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: text}); err != nil {
		if pc.SignalingState() == pion.SignalingStateHaveLocalOffer && pc.CurrentRemoteDescription() != nil {
			_ = h.dropOffer(pc)
		}
		return fmt.Errorf("%w: answer: %w", media.ErrNotAcceptable, err)
	}
	remote := dirsOf(s)
	audioMid := ""
	if h.audioTr != nil {
		audioMid = h.audioTr.Mid()
	}
	h.mu.Lock()
	offered := h.offerDir
	h.remoteDir = remote
	h.remoteOrig, h.haveRemote = s.Origin, true
	h.offer = nil
	h.mu.Unlock()
	dirs := map[string]dir{}
	codecName, te := "", false
	for i, md := range s.MediaDescriptions {
		if !isRTPMedia(md) {
			continue
		}
		m := mid(md, i)
		d := offered[m] & remote[m].reverse()
		if m == audioMid && md.MediaName.Port.Value != 0 {
			name, encodable, _ := sendCodec(md, h.audioOrder)
			if !encodable {
				d &^= dirSend
			}
			codecName, te = name, hasTelephoneEvent(md)
		}
		dirs[m] = d
	}
	h.completeExchange(dirs, audioMid, codecName, te)
	return nil
}

// completeExchange records a finished offer/answer and gates the audio.
func (h *Handler) completeExchange(dirs map[string]dir, audioMid, codecName string, te bool) {
	h.mu.Lock()
	h.localDir = dirs
	h.audioCodec, h.teOK = codecName, te
	h.mu.Unlock()
	h.audio.setSending(audioMid != "" && dirs[audioMid]&dirSend != 0)
	h.mu.Lock()
	vt := h.videoTr
	h.mu.Unlock()
	h.video.setSending(vt != nil && vt.Mid() != "" && dirs[vt.Mid()]&dirSend != 0)
	h.log.Debug("offer/answer complete", "directions", fmt.Sprint(dirs), "codec", codecName)
}

// dirsOf returns the direction of each audio and video m-line by mid.
func dirsOf(s *sdp.SessionDescription) map[string]dir {
	out := map[string]dir{}
	for i, md := range s.MediaDescriptions {
		if isRTPMedia(md) {
			out[mid(md, i)] = mediaDir(s, md)
		}
	}
	return out
}

func hasTelephoneEvent(md *sdp.MediaDescription) bool {
	for _, c := range codecs(md) {
		if c.name == "telephone-event" && c.clock == SampleRate {
			return true
		}
	}
	return false
}

// waitGathering waits for ICE gathering to complete, for at most d: on
// timeout the description goes out with the candidates found so far.
func (h *Handler) waitGathering(ctx context.Context, pc *pion.PeerConnection, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		h.log.Warn("ICE gathering timed out; sending the candidates found so far", "timeout", d,
			"state", pc.ICEGatheringState())
	case <-ctx.Done():
		return fmt.Errorf("webrtc: gathering candidates: %w", ctx.Err())
	case <-h.done:
		return media.ErrClosed
	}
	return nil
}

// readTrack reads a remote track until it ends, counting its packets.
// pion calls it on a goroutine of its own.
func (h *Handler) readTrack(track *pion.TrackRemote, _ *pion.RTPReceiver) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	if f := h.onTrack.Load(); f != nil && *f != nil {
		(*f)(track)
	}
	count := &h.videoCount
	isVideo := track.Kind() == pion.RTPCodecTypeVideo
	if !isVideo {
		count = &h.audioCount
	}
	rx := audio.DTMFReceiver{ClockRate: SampleRate}
	var tones []audio.DTMFTone
	var lastSeq uint16
	seqKnown := false
	if isVideo {
		h.videoSSRC.Store(uint32(track.SSRC()))
		mt := track.Codec().MimeType
		h.videoRecv.Store(&mt)
		if h.sink.Load() != nil {
			h.RequestKeyframe()
		}
	}
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-h.done:
				return
			default:
			}
			h.log.Debug("remote track read", "err", err)
			continue // e.g. an unknown payload type: the packet is skipped
		}
		count.packetsReceived.Add(1)
		count.bytesReceived.Add(uint64(len(pkt.Payload)))
		if !isVideo && !strings.EqualFold(track.Codec().MimeType, mimeTelephoneEvent) {
			if h.audioRecv.Load() == nil {
				mt := track.Codec().MimeType
				h.audioRecv.Store(&mt)
			}
			if f := h.onAudio.Load(); f != nil && *f != nil {
				h.play.push(track.Codec().MimeType, pkt)
			}
		}
		if track.Kind() == pion.RTPCodecTypeAudio && strings.EqualFold(track.Codec().MimeType, mimeTelephoneEvent) {
			tones = rx.Packet(tones[:0], pkt.Timestamp, pkt.Payload, time.Now())
			for _, t := range tones {
				h.dtmfReceived.Add(1)
				if f := h.onDTMF.Load(); f != nil && *f != nil {
					(*f)(t.Tone, t.Duration)
				}
			}
		}
		if isVideo {
			// A gap in the sequence is loss (or reordering): a sink's
			// decoder needs a keyframe to go on cleanly.
			if seqKnown && pkt.SequenceNumber != lastSeq+1 && int16(pkt.SequenceNumber-lastSeq) > 0 &&
				h.sink.Load() != nil && time.Since(time.Unix(0, h.lastKFAsk.Load())) >= minKeyframeInterval {
				h.RequestKeyframe()
			}
			if !seqKnown || int16(pkt.SequenceNumber-lastSeq) > 0 {
				lastSeq, seqKnown = pkt.SequenceNumber, true
			}
			h.writeSink(pkt)
		}
		if f := h.onRTP.Load(); f != nil && *f != nil {
			(*f)(track, pkt)
		}
	}
}

// Stats are a handler's transport state and media counts.
type Stats struct {
	// ICEGatheringState is the state of local candidate gathering.
	ICEGatheringState pion.ICEGatheringState
	// ICEConnectionState is the ICE connectivity state.
	ICEConnectionState pion.ICEConnectionState
	// ConnectionState combines the ICE and DTLS states.
	ConnectionState pion.PeerConnectionState
	// DTLSState is the state of the DTLS-SRTP handshake.
	DTLSState pion.DTLSTransportState
	// SelectedPair is the ICE candidate pair in use while ICE is
	// connected, else the last one that was (kept after Close, for an
	// end-of-call summary); nil when ICE never connected.
	SelectedPair *pion.ICECandidatePair
	// Audio and Video are the per-kind counts.
	Audio, Video StreamStats
	// Failure is the media failure reported to OnFailure (wrapping
	// media.ErrICEFailed), nil while the media are alive.
	Failure error
}

// StreamStats are one media kind's counts. Bytes are RTP payload bytes
// (headers excluded), as in the W3C statistics; counts add up across
// renegotiations.
type StreamStats struct {
	// Direction is the negotiated direction of the kind's first m-line,
	// from this side; unknown before the first exchange completes.
	Direction pion.RTPTransceiverDirection
	// Codec is the codec sent, e.g. "audio/PCMU": empty when nothing is
	// sent that way (the direction does not let us send, or the peer
	// took only codecs this handler cannot produce). For audio it is
	// the negotiated codec once the direction allows sending; for video,
	// the codec of the last frame sent.
	Codec string
	// CodecReceived is the codec of the RTP received, e.g. "audio/opus";
	// empty until a packet arrives.
	CodecReceived string
	// FramesSent counts the video frames sent.
	FramesSent uint64
	// KeyframeRequestsSent and KeyframeRequestsReceived count RTCP PLI
	// (and FIR) on video: ours to the peer, the peer's to us.
	KeyframeRequestsSent, KeyframeRequestsReceived uint64
	// PacketsSent and BytesSent count the RTP this handler sent,
	// telephone-events included (pion's statistics have no outbound-rtp).
	PacketsSent, BytesSent uint64
	// PacketsReceived and BytesReceived count the RTP read from remote
	// tracks.
	PacketsReceived, BytesReceived uint64
	// DTMFSent and DTMFReceived count RFC 4733 tones (audio).
	DTMFSent, DTMFReceived uint64
	// Discarded counts received audio packets the jitter buffer of
	// OnAudio dropped: too late to play, duplicates, or overflow.
	Discarded uint64
	// PacketsLost and Jitter are measured on received RTP; RoundTripTime
	// comes from the peer's RTCP receiver reports.
	PacketsLost   int64
	Jitter        time.Duration
	RoundTripTime time.Duration
}

// notePairs keeps each selected candidate pair as pion reports it, for
// Stats after the call. The pair is handed over by the callback: asking
// the ICE transport for it from inside one of pion's ICE callbacks would
// deadlock with Close, which holds the gatherer's lock while it waits
// for those callbacks to return.
func (h *Handler) notePairs(pc *pion.PeerConnection) {
	if sctp := pc.SCTP(); sctp != nil {
		if dt := sctp.Transport(); dt != nil {
			if it := dt.ICETransport(); it != nil {
				it.OnSelectedCandidatePairChange(func(pair *pion.ICECandidatePair) {
					if pair != nil {
						h.lastPair.Store(pair)
					}
				})
			}
		}
	}
}

// Stats returns the handler's current statistics.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	pc, audioTr := h.pc, h.audioTr
	var s Stats
	audioCodec := h.audioCodec
	localDir := h.localDir
	s.Failure = h.failure
	h.mu.Unlock()
	var audioMid string
	if audioTr != nil {
		audioMid = audioTr.Mid()
	}
	if localDir[audioMid]&dirSend != 0 && audioMid != "" {
		s.Audio.Codec = audioCodec
	}
	if c := h.audioRecv.Load(); c != nil {
		s.Audio.CodecReceived = *c
	}
	if c := h.videoRecv.Load(); c != nil && h.videoCount.packetsReceived.Load() > 0 {
		s.Video.CodecReceived = *c
	}
	if c := h.video.codecSent.Load(); c != nil {
		s.Video.Codec = *c
	}
	s.Video.FramesSent = h.video.framesSent.Load()
	s.Video.KeyframeRequestsSent = h.kfSent.Load()
	s.Video.KeyframeRequestsReceived = h.kfReceived.Load()
	s.SelectedPair = h.lastPair.Load()

	if localDir != nil && pc != nil {
		for _, t := range pc.GetTransceivers() {
			d, ok := localDir[t.Mid()]
			if !ok {
				continue
			}
			switch {
			case t.Mid() == audioMid:
				s.Audio.Direction = d.pion()
			case t.Kind() == pion.RTPCodecTypeVideo && s.Video.Direction == pion.RTPTransceiverDirectionUnknown:
				s.Video.Direction = d.pion()
			}
		}
	}
	fill := func(st *StreamStats, c *counters) {
		st.PacketsSent, st.BytesSent = c.packetsSent.Load(), c.bytesSent.Load()
		st.PacketsReceived, st.BytesReceived = c.packetsReceived.Load(), c.bytesReceived.Load()
	}
	fill(&s.Audio, &h.audioCount)
	fill(&s.Video, &h.videoCount)
	s.Audio.DTMFReceived = h.dtmfReceived.Load()
	s.Audio.DTMFSent = h.audio.dtmfSent.Load()
	s.Audio.Discarded = h.audioLate.Load()
	if pc == nil {
		return s
	}
	s.ICEGatheringState = pc.ICEGatheringState()
	s.ICEConnectionState = pc.ICEConnectionState()
	s.ConnectionState = pc.ConnectionState()
	if sctp := pc.SCTP(); sctp != nil {
		if dt := sctp.Transport(); dt != nil {
			s.DTLSState = dt.State()
			// Only once ICE is up: before, pion's ICETransport may still
			// be starting, unsynchronized with this read.
			up := s.ICEConnectionState == pion.ICEConnectionStateConnected ||
				s.ICEConnectionState == pion.ICEConnectionStateCompleted
			if it := dt.ICETransport(); it != nil && up {
				if pair, err := it.GetSelectedCandidatePair(); err == nil && pair != nil {
					s.SelectedPair = pair
					h.lastPair.Store(pair)
				}
			}
		}
	}
	byKind := func(kind string) *StreamStats {
		if kind == "video" {
			return &s.Video
		}
		return &s.Audio
	}
	// Loss, jitter and round-trip time come from pion's statistics, which
	// are not read while (or after) the PeerConnection closes: Stats
	// never waits for Close.
	if !h.closing.TryRLock() {
		return s
	}
	defer h.closing.RUnlock()
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return s
	}
	for _, v := range pc.GetStats() {
		switch st := v.(type) {
		case pion.InboundRTPStreamStats:
			k := byKind(st.Kind)
			k.PacketsLost += int64(st.PacketsLost)
			k.Jitter = max(k.Jitter, time.Duration(st.Jitter*float64(time.Second)))
		case pion.RemoteInboundRTPStreamStats:
			k := byKind(st.Kind)
			k.RoundTripTime = max(k.RoundTripTime, time.Duration(st.RoundTripTime*float64(time.Second)))
		}
	}
	return s
}
