package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pionrtp "github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// commandTimeout bounds one command's SIP exchange.
const commandTimeout = 15 * time.Second

// printer writes whole lines, one at a time, from any goroutine.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// phone is the softphone: a UserAgent, its registration and its calls.
type phone struct {
	opts options
	out  *printer
	ua   *sip.UserAgent
	reg  *sip.Registerer
	tr   *cli.Trace // -trace, or nil
	// stopping silences the disconnection that stopping causes.
	stopping atomic.Bool

	mu    sync.Mutex
	calls []*call // in progress, oldest first
	next  int
	wg    sync.WaitGroup // the calls' watchers
}

// call is one call of the phone.
type call struct {
	n        int
	sess     *sip.Session
	inviter  *sip.Inviter    // outgoing
	inv      *sip.Invitation // incoming
	peer     string
	incoming bool
	created  time.Time

	mu          sync.Mutex
	established time.Time
	rec         *wav.Writer
	answered    bool // incoming: answered or rejected
}

// ringing reports an incoming call not yet answered or rejected.
func (c *call) ringing() bool {
	if c.inv == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.inv.State()
	return !c.answered && (st == sip.SessionInitial || st == sip.SessionEstablishing)
}

// setAnswered marks an incoming call answered or rejected and reports
// whether it was the first time.
func (c *call) setAnswered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.answered
	c.answered = true
	return first
}

func (c *call) String() string { return "call " + strconv.Itoa(c.n) }

// duration formats how long the call has been established.
func (c *call) duration() string {
	c.mu.Lock()
	t := c.established
	c.mu.Unlock()
	if t.IsZero() {
		return "0:00"
	}
	d := time.Since(t).Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func newPhone(opts options, stdout, stderr io.Writer) (*phone, error) {
	p := &phone{opts: opts, out: &printer{w: stdout}}
	server, err := opts.acct.ServerAddress()
	if err != nil {
		return nil, err
	}
	tlsConf, err := opts.acct.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr, err := cli.OpenTrace(opts.acct.TracePath, opts.acct.TraceSecrets, stderr)
	if err != nil {
		return nil, err
	}
	var tracer trace.Tracer
	if tr != nil {
		p.tr, tracer = tr, tr.Tracer
	}
	var factory media.Factory
	if opts.acct.Media == "webrtc" {
		factory = webrtc.NewFactory(opts.acct.WebRTCConfig())
	} else {
		factory = rtp.NewFactory(opts.acct.RTPConfig())
	}
	p.ua, err = sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   opts.acct.AOR(),
		AuthorizationPassword: opts.acct.Password,
		Transport:             sip.TransportOptions{Server: server, TLSConfig: tlsConf},
		UserAgentString:       "sipua-softphone",
		Logger:                opts.logger,
		Tracer:                tracer,
		MediaFactory:          factory,
		Delegate: sip.UserAgentDelegate{
			OnInvite:  p.onInvite,
			OnMessage: p.onMessage,
			OnConnect: func() { p.out.printf("connected to %s", server) },
			OnDisconnect: func(err error) {
				if !p.stopping.Load() {
					p.out.printf("disconnected: %v (reconnecting)", err)
				}
			},
		},
	})
	if err != nil {
		_ = tr.Close()
		return nil, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	return p, nil
}

// start connects and, unless -no-register, registers, within -timeout.
func (p *phone) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.acct.Timeout)
	defer cancel()
	if err := p.ua.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	reg, err := sip.NewRegisterer(p.ua, sip.RegistererOptions{})
	if err != nil {
		return err
	}
	p.reg = reg
	if p.opts.register {
		if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		p.out.printf("registered as %s", p.ua.URI())
	}
	return nil
}

// stop hangs up every call, unregisters and stops the UserAgent.
func (p *phone) stop() {
	// Each step has its own bound, so that a server that is gone (a
	// REGISTER that cannot be answered) does not eat the others' time.
	step := func(d time.Duration, f func(ctx context.Context)) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		f(ctx)
	}
	step(5*time.Second, func(ctx context.Context) {
		for _, c := range p.active() {
			p.hangup(ctx, c)
		}
	})
	if p.reg != nil && p.reg.State() == sip.Registered {
		step(3*time.Second, func(ctx context.Context) { _ = p.reg.Unregister(ctx, sip.UnregisterOptions{}) })
	}
	p.stopping.Store(true)
	step(3*time.Second, func(ctx context.Context) { _ = p.ua.Stop(ctx) })
	// Stopping the UserAgent ends every call; their watchers then finish.
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.out.printf("error: calls still ending after %v", 5*time.Second)
	}
	if err := p.tr.Close(); err != nil {
		p.out.printf("error: %v", err)
	}
}

// active returns the calls in progress, oldest first.
func (p *phone) active() []*call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*call(nil), p.calls...)
}

// add tracks a new call, outgoing (inviter set) or incoming (inv set):
// its media, its state changes and its end.
func (p *phone) add(sess *sip.Session, peer string, inviter *sip.Inviter, inv *sip.Invitation) *call {
	p.mu.Lock()
	p.next++
	c := &call{n: p.next, sess: sess, peer: peer, inviter: inviter, inv: inv, incoming: inv != nil, created: time.Now()}
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	if err := p.attachMedia(c); err != nil {
		p.out.printf("%v: media: %v", c, err)
	}
	sess.SetDelegate(sip.SessionDelegate{
		OnDTMF: func(tone rune, _ time.Duration) { p.out.printf("%v: dtmf %c received (INFO)", c, tone) },
		OnMessage: func(r *sip.IncomingRequest) {
			p.out.printf("%v: message: %s", c, r.Request.Body)
			_ = r.Accept(context.Background())
		},
		OnRefer: func(r *sip.Referral) { go p.followRefer(c, r) },
	})
	remove := sess.OnStateChange(func(s sip.SessionState) {
		if s == sip.SessionEstablished {
			c.mu.Lock()
			first := c.established.IsZero()
			if first {
				c.established = time.Now()
			}
			c.mu.Unlock()
			if first {
				p.out.printf("%v: established with %s", c, c.peer)
			}
		}
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-sess.Done()
		remove()
		p.mu.Lock()
		for i, x := range p.calls {
			if x == c {
				p.calls = append(p.calls[:i], p.calls[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		p.out.printf("%v: ended: %v after %s", c, sess.EndReason(), c.duration())
		c.mu.Lock()
		rec := c.rec
		c.mu.Unlock()
		if rec != nil {
			if err := rec.Close(); err != nil {
				p.out.printf("%v: recording: %v", c, err)
			} else {
				p.out.printf("%v: recorded %.1f s", c, float64(rec.Samples())/wav.SampleRate)
			}
		}
	}()
	return c
}

// recordPath returns the -record file of call n: NAME.wav for the first
// call, NAME-2.wav for the second …
func (p *phone) recordPath(n int) string {
	if n == 1 {
		return p.opts.record
	}
	ext := filepath.Ext(p.opts.record)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(p.opts.record, ext), n, ext)
}

// attachMedia sets the call's audio source, recorder and DTMF receiver.
func (p *phone) attachMedia(c *call) error {
	var source *wav.Source
	if p.opts.play != nil {
		source = wav.NewSource(p.opts.play, p.opts.loop)
	}
	var rec *wav.Writer
	if p.opts.record != "" {
		w, err := wav.Create(p.recordPath(c.n))
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
		rec = w
		c.mu.Lock()
		c.rec = w
		c.mu.Unlock()
	}
	onDTMF := func(tone rune, _ time.Duration) { p.out.printf("%v: dtmf %c received", c, tone) }
	switch h := c.sess.MediaHandler().(type) {
	case *rtp.Handler:
		if source != nil {
			h.SetAudioSource(source)
		}
		if rec != nil {
			h.OnAudio(func(s []int16) { _ = rec.WriteSamples(s) })
		}
		h.OnDTMF(onDTMF)
	case *webrtc.Handler:
		if source != nil {
			h.SetAudioSource(source)
		}
		if rec != nil {
			var pcm []int16
			h.OnRTP(func(_ *pion.TrackRemote, pk *pionrtp.Packet) {
				if pk.PayloadType != 0 && pk.PayloadType != 8 {
					return
				}
				pcm = pcm[:0]
				for _, b := range pk.Payload {
					if pk.PayloadType == 0 {
						pcm = append(pcm, webrtc.DecodeMuLaw(b))
					} else {
						pcm = append(pcm, webrtc.DecodeALaw(b))
					}
				}
				_ = rec.WriteSamples(pcm)
			})
		}
		h.OnDTMF(onDTMF)
	case nil:
		return errors.New("no media handler")
	}
	return nil
}

// onInvite reports an incoming call; the answer and reject commands
// decide.
func (p *phone) onInvite(inv *sip.Invitation) {
	from := inv.Request.Header.Get("From")
	if a, err := inv.Request.Header.From(); err == nil {
		from = a.URI.String()
	}
	c := p.add(inv.Session, from, nil, inv)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	_ = inv.Progress(ctx, sip.ProgressOptions{})
	extra := ""
	if inv.Replaces != nil {
		extra = " replacing a call"
	}
	p.out.printf("%v: incoming from %s%s (answer or reject)", c, from, extra)
}

func (p *phone) onMessage(m *sip.IncomingRequest) {
	from := m.Request.Header.Get("From")
	if a, err := m.Request.Header.From(); err == nil {
		from = a.URI.String()
	}
	_ = m.Accept(context.Background())
	p.out.printf("message from %s: %s", from, m.Request.Body)
}

// followRefer follows a transfer request from the peer of c.
func (p *phone) followRefer(c *call, r *sip.Referral) {
	target := r.ReferTo.URI
	target.Headers = ""
	p.out.printf("%v: transfer requested to %s; calling", c, target.String())
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	// Referral.Accept returns the new call once it is answered: it is
	// listed from then on.
	inv, err := r.Accept(ctx, sip.InviterOptions{})
	if err != nil {
		p.out.printf("%v: transfer to %s failed: %v", c, target.String(), err)
		return
	}
	nc := p.add(inv.Session, target.String(), inv, nil)
	nc.mu.Lock()
	nc.established = time.Now()
	nc.mu.Unlock()
	p.out.printf("%v: established with %s (transferred by call %d)", nc, nc.peer, c.n)
	_ = c.sess.Bye(ctx)
}

// help is what the help command prints.
const help = `commands:
  register | unregister
  call URI                 call (sip:user@domain, or just user for the account's domain)
  answer [N] | reject [N] [CODE]
  hangup [N]               BYE, CANCEL or reject, as the call's state asks
  hold [N] | unhold [N]
  dtmf DIGITS [N]          0-9 * # A-D
  transfer URI [N]         blind transfer (REFER)
  atransfer [N M]          attended transfer: the peer of call N (default the older) to the peer of call M
  message URI TEXT         MESSAGE outside any call
  status | help | quit
N is a call number; without it the newest call in progress is meant.`

// exec runs one command line and reports whether it was quit.
func (p *phone) exec(ctx context.Context, line string) (quit bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		return false
	}
	cmd, args := strings.ToLower(fields[0]), fields[1:]
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var err error
	switch cmd {
	case "quit", "exit", "q":
		p.out.printf("bye")
		return true
	case "help", "?":
		p.out.printf("%s", help)
	case "status":
		p.status(true)
	case "register":
		if err = p.reg.Register(ctx, sip.RegisterOptions{}); err == nil {
			p.out.printf("registered as %s", p.ua.URI())
		}
	case "unregister":
		if err = p.reg.Unregister(ctx, sip.UnregisterOptions{}); err == nil {
			p.out.printf("unregistered")
		}
	case "call", "dial":
		err = p.call(args)
	case "answer", "accept":
		err = p.answer(ctx, args)
	case "reject", "decline":
		err = p.reject(args)
	case "hangup", "bye", "cancel":
		var c *call
		if c, err = p.pick(args, nil); err == nil {
			p.hangup(ctx, c)
		}
	case "hold", "unhold":
		err = p.hold(ctx, cmd == "hold", args)
	case "dtmf":
		err = p.dtmf(ctx, args)
	case "transfer":
		err = p.transfer(ctx, args)
	case "atransfer":
		err = p.attendedTransfer(ctx, args)
	case "message", "msg":
		err = p.message(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q (type help)", cmd)
	}
	if err != nil {
		p.out.printf("error: %s: %v", cmd, err)
	}
	return false
}

// target completes a call or message target: "bob" becomes
// sip:bob@DOMAIN.
func (p *phone) target(s string) (string, error) {
	if !strings.Contains(s, ":") {
		u := p.ua.URI()
		s = message.URI{Scheme: "sip", User: s, Host: u.Host, Port: u.Port}.String()
	}
	u, err := message.ParseURI(s)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", s, err)
	}
	return u.String(), nil
}

// pick returns the call named by the last argument, if it is a number,
// else the newest call for which ok holds (any call when ok is nil).
func (p *phone) pick(args []string, ok func(*call) bool) (*call, error) {
	calls := p.active()
	if len(args) > 0 {
		if n, err := strconv.Atoi(args[len(args)-1]); err == nil {
			for _, c := range calls {
				if c.n == n {
					return c, nil
				}
			}
			return nil, fmt.Errorf("no call %d in progress", n)
		}
	}
	for i := len(calls) - 1; i >= 0; i-- {
		if ok == nil || ok(calls[i]) {
			return calls[i], nil
		}
	}
	return nil, errors.New("no such call in progress")
}

func (p *phone) call(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: call URI")
	}
	target, err := p.target(args[0])
	if err != nil {
		return err
	}
	inv, err := sip.NewInviter(p.ua, target, sip.InviterOptions{})
	if err != nil {
		return err
	}
	c := p.add(inv.Session, target, inv, nil)
	p.out.printf("%v: calling %s", c, target)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err := inv.Invite(ctx, sip.InviteOptions{
			OnProgress: func(r *message.Response) {
				p.out.printf("%v: %s (%d)", c, strings.ToLower(r.Reason), r.StatusCode)
			},
		})
		if err != nil {
			p.out.printf("%v: failed: %v", c, err)
		}
	}()
	return nil
}

func (p *phone) answer(ctx context.Context, args []string) error {
	c, err := p.pick(args, (*call).ringing)
	if err != nil {
		return errors.New("no incoming call to answer")
	}
	if !c.ringing() {
		return fmt.Errorf("%v is not an incoming call waiting for an answer", c)
	}
	c.setAnswered()
	return c.inv.Accept(ctx, sip.AcceptOptions{Media: media.Options{Constraints: media.Constraints{Audio: true}}})
}

func (p *phone) reject(args []string) error {
	code := 486
	if len(args) > 0 {
		if n, err := strconv.Atoi(args[len(args)-1]); err == nil && n >= 300 {
			code, args = n, args[:len(args)-1]
		}
	}
	c, err := p.pick(args, (*call).ringing)
	if err != nil {
		return errors.New("no incoming call to reject")
	}
	if !c.ringing() {
		return fmt.Errorf("%v is not an incoming call waiting for an answer", c)
	}
	c.setAnswered()
	return c.inv.Reject(context.Background(), code, "")
}

// hangup ends a call whatever its state.
func (p *phone) hangup(ctx context.Context, c *call) {
	var err error
	switch st := c.sess.State(); {
	case c.ringing():
		c.setAnswered()
		err = c.inv.Reject(context.Background(), 486, "")
	case c.inviter != nil && st != sip.SessionEstablished && st != sip.SessionTerminated:
		err = c.inviter.Cancel(ctx, "")
	case st == sip.SessionEstablished || st == sip.SessionEstablishing:
		err = c.sess.Bye(ctx)
	}
	if err != nil {
		p.out.printf("error: hangup %v: %v", c, err)
	}
}

func (p *phone) hold(ctx context.Context, on bool, args []string) error {
	c, err := p.pick(args, func(c *call) bool { return c.sess.State() == sip.SessionEstablished })
	if err != nil {
		return err
	}
	if on {
		if err := c.sess.Hold(ctx); err != nil {
			return err
		}
		p.out.printf("%v: on hold", c)
		return nil
	}
	if err := c.sess.Unhold(ctx); err != nil {
		return err
	}
	p.out.printf("%v: resumed", c)
	return nil
}

func (p *phone) dtmf(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: dtmf DIGITS [N]")
	}
	digits := args[0]
	for _, d := range digits {
		if !strings.ContainsRune("0123456789*#ABCDabcd", d) {
			return fmt.Errorf("%q is not a DTMF digit", d)
		}
	}
	c, err := p.pick(args[1:], func(c *call) bool { return c.sess.State() == sip.SessionEstablished })
	if err != nil {
		return err
	}
	how := "rtp"
	if p.opts.dtmf == "rtp" {
		err = c.sess.SendDTMF(ctx, digits, 0, sip.DTMFRTP)
		if errors.Is(err, media.ErrNotSupported) {
			how = "info"
		} else if err != nil {
			return err
		}
	} else {
		how = "info"
	}
	if how == "info" {
		if err := c.sess.SendDTMF(ctx, digits, 0, sip.DTMFInfo); err != nil {
			return err
		}
	}
	p.out.printf("%v: dtmf %s sent (%s)", c, digits, how)
	return nil
}

func (p *phone) transfer(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: transfer URI [N]")
	}
	target, err := p.target(args[0])
	if err != nil {
		return err
	}
	c, err := p.pick(args[1:], func(c *call) bool { return c.sess.State() == sip.SessionEstablished })
	if err != nil {
		return err
	}
	err = c.sess.Refer(ctx, target, sip.ReferOptions{OnNotify: p.referProgress(c, nil)})
	if err != nil {
		return err
	}
	p.out.printf("%v: transfer to %s accepted", c, target)
	return nil
}

// referProgress prints a transfer's NOTIFYs and hangs up c (and other,
// if any) once it has succeeded.
func (p *phone) referProgress(c, other *call) func(code int, final bool) {
	return func(code int, final bool) {
		p.out.printf("%v: transfer progress %d", c, code)
		if !final {
			return
		}
		if code >= 200 && code < 300 {
			p.out.printf("%v: transfer done", c)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
				defer cancel()
				_ = c.sess.Bye(ctx)
				if other != nil && other.sess.State() == sip.SessionEstablished {
					_ = other.sess.Bye(ctx)
				}
			}()
			return
		}
		p.out.printf("%v: transfer failed (%d)", c, code)
	}
}

func (p *phone) attendedTransfer(ctx context.Context, args []string) error {
	var up []*call
	for _, c := range p.active() {
		if c.sess.State() == sip.SessionEstablished {
			up = append(up, c)
		}
	}
	var from, to *call
	switch len(args) {
	case 0:
		if len(up) < 2 {
			return errors.New("needs two established calls (call the second party first)")
		}
		from, to = up[len(up)-2], up[len(up)-1]
	case 2:
		var err error
		if from, err = p.pick(args[:1], nil); err != nil {
			return err
		}
		if to, err = p.pick(args[1:], nil); err != nil {
			return err
		}
	default:
		return errors.New("usage: atransfer [N M]")
	}
	if from == to {
		return errors.New("the two calls must differ")
	}
	if err := from.sess.ReferReplacing(ctx, to.sess, sip.ReferOptions{OnNotify: p.referProgress(from, to)}); err != nil {
		return err
	}
	p.out.printf("%v: transfer to the peer of %v accepted", from, to)
	return nil
}

func (p *phone) message(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return errors.New("usage: message URI TEXT")
	}
	target, err := p.target(args[0])
	if err != nil {
		return err
	}
	text := strings.Join(args[1:], " ")
	m, err := sip.NewMessager(p.ua, target, []byte(text), "text/plain", sip.RequestOptions{})
	if err != nil {
		return err
	}
	if err := m.Message(ctx); err != nil {
		return err
	}
	p.out.printf("message sent to %s", target)
	return nil
}

// status prints the registration and one line per call; the periodic
// status (all false) prints only when calls are up.
func (p *phone) status(all bool) {
	calls := p.active()
	if !all && len(calls) == 0 {
		return
	}
	if all {
		p.out.printf("status: %s %v, %d call(s)", p.ua.URI(), p.reg.State(), len(calls))
	}
	for _, c := range calls {
		dir := "outgoing"
		if c.incoming {
			dir = "incoming"
		}
		hold := ""
		if c.sess.OnHold() {
			hold = ", on hold"
		}
		p.out.printf("%v: %s %s %v %s%s", c, dir, c.peer, c.sess.State(), c.duration(), hold)
	}
}

func (p *phone) periodicStatus() { p.status(false) }
