// Command videobot answers SIP calls with video: it plays a video file
// (VP8 in IVF, or a raw H.264 Annex-B stream) and a WAV file to each
// caller, in a loop, and records what the caller sends: the video to
// call-N.ivf (VP8) and the audio to call-N.wav, in the -record folder.
//
//	go run ./examples/videobot -server wss://sip.example.com -user bot -password secret \
//	    -media webrtc -video clip.ivf -audio hello.wav -record /tmp/calls
//
// Video needs -media webrtc (the default here); with -media rtp (plain
// RTP/AVP, G.711) calls are audio only, and the audio is recorded by the
// same recorder: both handlers hand out decoded PCM through the same
// OnAudio callback (see recordAudio). An audio+video SDP is some 5 KB:
// use a stream transport (tcp, tls, ws, wss), not udp.
//
// Flags may also come from environment variables (SIPUA_SERVER,
// SIPUA_USER, SIPUA_PASSWORD, SIPUA_DOMAIN, SIPUA_TRANSPORT, SIPUA_MEDIA,
// SIPUA_MEDIA_IP, SIPUA_CA). Exit codes: 0 after SIGINT/SIGTERM, 1 other
// failures, 2 wrong flags, 3 server unreachable, 4 authentication failed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// config is what the flags say.
type config struct {
	acct     *cli.Account
	video    []byte // the clip, read once
	h264     bool
	fps      float64
	audio    []int16
	record   string
	register bool
	log      *slog.Logger
}

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "videobot:", err)
		return cli.ExitCode(err)
	}
	b := &bot{cfg: cfg, out: stdout, calls: map[media.Handler]*call{}}
	if err := b.run(ctx); err != nil {
		if ctx.Err() != nil {
			return cli.ExitOK
		}
		fmt.Fprintln(stderr, "videobot:", cli.Explain(err, cfg.acct))
		return cli.ExitCode(err)
	}
	return cli.ExitOK
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("videobot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	acct := cli.AddFlags(fs, getenv)
	if f := fs.Lookup("media"); f != nil && getenv(cli.EnvMedia) == "" {
		f.DefValue = "webrtc"
		_ = f.Value.Set("webrtc")
	}
	videoPath := fs.String("video", "", "video played to each caller: a VP8 .ivf file or a raw H.264 Annex-B .h264 file (required with -media webrtc)")
	fps := fs.Float64("fps", 30, "frame rate of an H.264 file")
	audioPath := fs.String("audio", "", "WAV file played to each caller (default: a 440 Hz tone)")
	record := fs.String("record", ".", "folder for the recordings call-N.ivf and call-N.wav")
	noReg := fs.Bool("no-register", false, "do not register")
	verbose := fs.Bool("v", false, "log the SIP stack's debug records to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: videobot -server HOST[:PORT] -user NAME [-password PW] -video FILE [flags]\n\n"+
			"Answers calls, plays a video and a WAV file, records the caller's video (IVF) and audio (WAV).\n"+
			"Exit codes: 0 stopped by a signal, 1 failure, 2 wrong flags, 3 server unreachable, 4 authentication failed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	if err := acct.Check(); err != nil {
		return nil, err
	}
	cfg := &config{acct: acct, fps: *fps, record: *record, register: !*noReg}
	if acct.Media == "webrtc" {
		if *videoPath == "" {
			return nil, fmt.Errorf("%w: -video is required with -media webrtc", cli.ErrUsage)
		}
		b, err := os.ReadFile(*videoPath)
		if err != nil {
			return nil, fmt.Errorf("%w: -video: %w", cli.ErrUsage, err)
		}
		cfg.video, cfg.h264 = b, !strings.EqualFold(filepath.Ext(*videoPath), ".ivf")
		if _, err := cfg.openVideo(); err != nil {
			return nil, fmt.Errorf("%w: -video %s: %w", cli.ErrUsage, *videoPath, err)
		}
	}
	if *audioPath != "" {
		s, err := wav.ReadFile(*audioPath)
		if err != nil {
			return nil, fmt.Errorf("%w: -audio: %w", cli.ErrUsage, err)
		}
		cfg.audio = s
	}
	if st, err := os.Stat(*record); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: -record %s is not a folder", cli.ErrUsage, *record)
	}
	if *fps <= 0 {
		return nil, fmt.Errorf("%w: -fps must be positive", cli.ErrUsage)
	}
	if *verbose {
		cfg.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

// openVideo returns a source playing the clip once.
func (c *config) openVideo() (webrtc.VideoSource, error) {
	if c.h264 {
		return webrtc.NewH264Source(bytes.NewReader(c.video), c.fps)
	}
	return webrtc.NewIVFSource(bytes.NewReader(c.video))
}

// audioReceiver is what both media handlers (media/rtp, media/webrtc)
// offer for received audio: decoded 16-bit PCM at 8 kHz, packet by packet,
// out of a jitter buffer.
type audioReceiver interface {
	OnAudio(f func(samples []int16))
}

// audioRecorder writes the audio a handler receives to a WAV file.
type audioRecorder struct {
	mu     sync.Mutex
	w      *wav.Writer
	err    error
	closed bool
}

// recordAudio records what h receives to w until close: the same code
// whichever handler h is.
func recordAudio(h audioReceiver, w *wav.Writer) *audioRecorder {
	r := &audioRecorder{w: w}
	h.OnAudio(r.write)
	return r
}

func (r *audioRecorder) write(samples []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil {
		return
	}
	r.err = r.w.WriteSamples(samples)
}

// close ends the recording and returns the samples written.
func (r *audioRecorder) close() (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.w.Samples(), r.err
	}
	r.closed = true
	n := r.w.Samples()
	if err := r.w.Close(); err != nil && r.err == nil {
		r.err = err
	}
	return n, r.err
}

// call is one answered call's recordings.
type call struct {
	n         int
	audio     *audioRecorder
	video     *ivfwriter.IVFWriter // nil for plain RTP
	videoPath string
	vh        *webrtc.Handler
	err       error // setting the call up failed
}

// bot answers calls.
type bot struct {
	cfg *config
	out io.Writer

	mu    sync.Mutex
	n     int
	calls map[media.Handler]*call
	wg    sync.WaitGroup
}

func (b *bot) printf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.out, format+"\n", args...)
}

// newCall makes the recordings of a new call's handler.
func (b *bot) newCall(h media.Handler) *call {
	b.mu.Lock()
	b.n++
	c := &call{n: b.n}
	b.calls[h] = c
	b.mu.Unlock()
	base := filepath.Join(b.cfg.record, fmt.Sprintf("call-%d", c.n))
	w, err := wav.Create(base + ".wav")
	if err != nil {
		c.err = err
		return c
	}
	c.audio = recordAudio(h.(audioReceiver), w)
	if vh, ok := h.(*webrtc.Handler); ok {
		c.videoPath = base + ".ivf"
		f, err := os.Create(c.videoPath)
		if err != nil {
			c.err = err
			return c
		}
		if c.video, err = webrtc.NewIVFSink(f); err != nil {
			c.err = errors.Join(err, f.Close())
			return c
		}
		c.vh = vh
		vh.SetVideoSink(c.video)
	}
	return c
}

func (b *bot) audioSource() webrtc.AudioSource {
	if b.cfg.audio != nil {
		return wav.NewSource(b.cfg.audio, true)
	}
	return webrtc.Tone(440)
}

func (b *bot) factory() media.Factory {
	if b.cfg.acct.Media != "webrtc" {
		rc := b.cfg.acct.RTPConfig()
		rc.Logger = b.cfg.log
		rc.Setup = func(h *rtp.Handler, _ media.SessionInfo) {
			h.SetAudioSource(b.audioSource())
			b.newCall(h)
		}
		return rtp.NewFactory(rc)
	}
	wc := b.cfg.acct.WebRTCConfig()
	wc.Logger = b.cfg.log
	wc.Setup = func(h *webrtc.Handler, _ media.SessionInfo) {
		h.SetAudioSource(b.audioSource())
		if src, err := webrtc.LoopVideo(b.cfg.openVideo); err == nil {
			h.SetVideoSource(src)
		}
		b.newCall(h)
	}
	return webrtc.NewFactory(wc)
}

// run registers and answers calls until ctx ends.
func (b *bot) run(ctx context.Context) error {
	server, err := b.cfg.acct.ServerAddress()
	if err != nil {
		return err
	}
	tlsConf, err := b.cfg.acct.TLSConfig()
	if err != nil {
		return err
	}
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   b.cfg.acct.AOR(),
		AuthorizationPassword: b.cfg.acct.Password,
		Transport:             sip.TransportOptions{Server: server, TLSConfig: tlsConf},
		MediaFactory:          b.factory(),
		Logger:                b.cfg.log,
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.answer(ctx, inv)
			}()
		}},
	})
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, b.cfg.acct.Timeout)
	defer cancel()
	if err := ua.Start(startCtx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(stopCtx)
		b.wg.Wait()
	}()
	var reg *sip.Registerer
	if b.cfg.register {
		if reg, err = sip.NewRegisterer(ua, sip.RegistererOptions{}); err != nil {
			return err
		}
		if err := reg.Register(startCtx, sip.RegisterOptions{}); err != nil {
			return err
		}
	}
	b.printf("videobot: %s ready for calls (%s media)", b.cfg.acct.AOR(), b.cfg.acct.Media)
	<-ctx.Done()
	if reg != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = reg.Unregister(stopCtx, sip.UnregisterOptions{})
	}
	b.printf("videobot: stopped taking calls")
	return ctx.Err()
}

// answer accepts a call with audio, and video when the media allow it,
// waits for its end and closes its recordings.
func (b *bot) answer(ctx context.Context, inv *sip.Invitation) {
	h := inv.MediaHandler()
	b.mu.Lock()
	c := b.calls[h]
	delete(b.calls, h)
	b.mu.Unlock()
	if c == nil || c.err != nil {
		b.printf("call from %s: refused, no recording: %v", caller(inv), c.errOrNil())
		if err := inv.Reject(ctx, 500, ""); err != nil {
			b.printf("call from %s: reject: %v", caller(inv), err)
		}
		c.finish()
		return
	}
	opts := media.Options{Constraints: media.Constraints{Audio: true, Video: c.vh != nil}}
	if err := inv.Accept(ctx, sip.AcceptOptions{Media: opts}); err != nil {
		b.printf("call %d from %s: accept: %v", c.n, caller(inv), err)
		c.finish()
		return
	}
	b.printf("call %d from %s: answered", c.n, caller(inv))
	select {
	case <-inv.Done():
	case <-ctx.Done():
		byeCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = inv.Bye(byeCtx)
		cancel()
	}
	samples, frames, err := c.finish()
	if err != nil {
		b.printf("call %d ended (%s): recording failed: %v", c.n, inv.EndReason().Cause, err)
		return
	}
	if c.video == nil {
		b.printf("call %d ended (%s): recorded call-%d.wav (%d samples)", c.n, inv.EndReason().Cause, c.n, samples)
		return
	}
	b.printf("call %d ended (%s): recorded call-%d.wav (%d samples) and call-%d.ivf (%d video frames)",
		c.n, inv.EndReason().Cause, c.n, samples, c.n, frames)
}

// caller names the calling party.
func caller(inv *sip.Invitation) string {
	if a, err := inv.Request.Header.From(); err == nil {
		return a.URI.String()
	}
	return inv.Request.Header.Get("From")
}

func (c *call) errOrNil() error {
	if c == nil {
		return errors.New("no media handler")
	}
	return c.err
}

// finish closes the recordings and returns what they hold.
func (c *call) finish() (samples int64, frames int, err error) {
	if c == nil {
		return 0, 0, nil
	}
	if c.audio != nil {
		samples, err = c.audio.close()
	}
	if c.vh != nil {
		c.vh.SetVideoSink(nil) // no more packets: the file may close
	}
	if c.video != nil {
		err = errors.Join(err, c.video.Close())
		frames = countFrames(c.videoPath)
	}
	return samples, frames, err
}

// countFrames returns the number of frames of an IVF file.
func countFrames(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	src, err := webrtc.NewIVFSource(f)
	if err != nil {
		return 0
	}
	n := 0
	for {
		if _, err := src.ReadFrame(); err != nil {
			return n
		}
		n++
	}
}
