// Package botcore is the core of the bot example, importable by other
// programs: a SIP user agent that answers every call (many at once),
// plays a prompt, collects the caller's DTMF digits (RFC 4733 in the
// media, or SIP INFO) and then echoes the caller's audio back, with plain
// RTP (media/rtp) or WebRTC (media/webrtc) media.
//
// A program fills a Config and runs the bot until its context ends:
//
//	b, err := botcore.New(botcore.Config{
//		URI:      "sip:bot@example.com",
//		Password: "secret",
//		Server:   "wss://sip.example.com/ws",
//		Media:    botcore.WebRTC,
//		OnEvent:  func(e botcore.Event) { fmt.Println(e) },
//	})
//	if err != nil { … }
//	err = b.Run(ctx) // registers, answers calls, and on ctx's end hangs up and unregisters
//
// With Config.Accounts the bot answers on several accounts from one
// process: they share one sip.Stack (one socket or server connection, one
// event loop), each registered with its own credentials.
//
// A program that has a UserAgent of its own can hand incoming calls to
// Bot.Handle instead, with Bot.MediaFactory as the UserAgent's
// MediaFactory.
package botcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	pionrtp "github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// MediaKind selects the media handler of the bot's calls.
type MediaKind string

// The media handlers.
const (
	// RTP is plain RTP/AVP (media/rtp): desk phones, trunks, baresip.
	RTP MediaKind = "rtp"
	// WebRTC is ICE + DTLS-SRTP (media/webrtc): browsers.
	WebRTC MediaKind = "webrtc"
)

// Defaults of Config fields left zero.
const (
	DefaultMaxCalls        = 64
	DefaultMaxCallDuration = time.Hour
	// DefaultEchoDelay is how much received audio is buffered before it
	// is echoed.
	DefaultEchoDelay = 60 * time.Millisecond
	// maxEchoBuffer bounds the echo buffer; older audio is dropped.
	maxEchoBuffer = time.Second
)

// ErrConfig reports a Config that cannot work.
var ErrConfig = errors.New("botcore: bad configuration")

// Config configures a Bot. URI is required, and Server or Listen to be
// reachable; every other field has a default.
type Config struct {
	// URI is the bot's address of record, e.g. "sip:bot@example.com".
	URI string
	// AuthorizationUsername and Password are the digest credentials.
	// AuthorizationUsername defaults to URI's user.
	AuthorizationUsername string
	Password              string
	// Server is the registrar/proxy the bot keeps a connection to, as
	// sip.TransportOptions.Server: "ws://…", "wss://…",
	// "sip:host:port;transport=tcp", "sip:host:port" (UDP), "sips:…".
	Server string
	// Listen are local addresses to receive calls on directly, as
	// sip.TransportOptions.Listen (e.g. "udp://127.0.0.1:5060").
	Listen []string
	// TLSConfig is used for wss:, sips: and TLS servers. Nil: the system
	// roots.
	TLSConfig *tls.Config
	// NoRegister keeps Run from registering (a bot reached through
	// Listen, or registered by other means).
	NoRegister bool
	// Accounts are more accounts the bot answers on, besides URI. When
	// there are any, Run serves them all on one sip.Stack: one socket or
	// connection to Server, one event loop; each account registers with
	// its own credentials, and its calls' events name it (Event.Account).
	Accounts []Account

	// Media selects the media handler. Empty: RTP.
	Media MediaKind
	// RTP and WebRTC configure the handlers (their Setup hooks are called
	// as usual; the bot sets the audio source and callbacks itself).
	RTP    rtp.Config
	WebRTC webrtc.Config

	// Prompt is played to each caller once the call is answered, mono
	// 16-bit samples at 8 kHz (wav.ReadFile reads them from a file). Nil:
	// DefaultPrompt(). Only read.
	Prompt []int16
	// EchoDelay is how much of the caller's audio is buffered before the
	// echo starts. Zero: DefaultEchoDelay.
	EchoDelay time.Duration
	// DigitsEnd, when a caller sends it, closes the current group of
	// digits (an EventDigits). Zero: '#'. Digits left when the call ends
	// are reported then.
	DigitsEnd rune

	// MaxCalls bounds the calls in progress; more are answered 486 Busy
	// Here. Zero: DefaultMaxCalls.
	MaxCalls int
	// MaxCallDuration hangs up a call that lasts longer. Zero:
	// DefaultMaxCallDuration.
	MaxCallDuration time.Duration

	// UserAgentString is sent in User-Agent; empty: "sipua-bot".
	UserAgentString string
	// Logger receives the bot's and its UserAgent's logs. Nil: nothing
	// is logged.
	Logger *slog.Logger
	// Tracer, when set, sees every SIP message Run's UserAgent sends and
	// receives (see package trace: pcap and text writers).
	Tracer trace.Tracer
	// Observer, when set, receives the UserAgent's call, transaction,
	// connection and registration events (sip.UserAgentOptions.Observer;
	// metrics/prom makes one).
	Observer *sip.Observer
	// OnEvent, when set, receives the bot's events in order, one at a
	// time, on a goroutine of the bot's (never under a lock): print or
	// collect them and return.
	OnEvent func(Event)
}

// Account is one more account of Config.Accounts.
type Account struct {
	// URI is the account's address of record, e.g. "sip:sales@example.com".
	URI string
	// AuthorizationUsername (default: URI's user) and Password are its
	// digest credentials.
	AuthorizationUsername string
	Password              string
}

// registerWorkers bounds the accounts registered or unregistered at once.
const registerWorkers = 32

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventRegistered: the bot is registered (or, with NoRegister,
	// started) and takes calls.
	EventRegistered EventKind = iota
	// EventIncoming: a call arrives (From says from whom).
	EventIncoming
	// EventBusy: a call was refused with 486, MaxCalls being reached.
	EventBusy
	// EventAnswered: the call is answered; the prompt plays.
	EventAnswered
	// EventPromptDone: the prompt has been sent; the echo starts.
	EventPromptDone
	// EventDigit: one DTMF digit (Digits holds it).
	EventDigit
	// EventDigits: a group of digits ended by Config.DigitsEnd, or left
	// when the call ended (Digits holds them, with the end digit).
	EventDigits
	// EventEnded: the call is over (Reason says why).
	EventEnded
	// EventError: something failed (Err); for a call, the call is over.
	EventError
	// EventUnregistered: Run is finishing; no more calls are taken.
	EventUnregistered
)

// String returns the kind's name, e.g. "digits".
func (k EventKind) String() string {
	names := [...]string{"registered", "incoming", "busy", "answered", "prompt-done", "digit", "digits", "ended", "error", "unregistered"}
	if k < 0 || int(k) >= len(names) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return names[k]
}

// Event is something that happened to the bot or one of its calls.
type Event struct {
	Kind EventKind
	// Time is when it happened.
	Time time.Time
	// Call numbers the bot's calls from 1; 0 for the bot's own events.
	Call int
	// CallID is the call's SIP Call-ID.
	CallID string
	// From is the caller's address.
	From string
	// Account is the address of record the call came to, when the bot
	// serves several (Config.Accounts); empty otherwise.
	Account string
	// Digits are the digit or digits of EventDigit and EventDigits.
	Digits string
	// Reason is why a call ended (EventEnded).
	Reason sip.EndReason
	// Err is the failure of EventError.
	Err error
}

// String formats the event as the bot example prints it, e.g.
// "call 3: digits 1234#".
func (e Event) String() string {
	var who string
	if e.Call > 0 {
		who = fmt.Sprintf("call %d: ", e.Call)
	}
	switch e.Kind {
	case EventRegistered:
		return "bot: ready for calls"
	case EventUnregistered:
		return "bot: stopped taking calls"
	case EventIncoming:
		if e.Account != "" {
			return fmt.Sprintf("%sincoming from %s to %s (Call-ID %s)", who, e.From, e.Account, e.CallID)
		}
		return fmt.Sprintf("%sincoming from %s (Call-ID %s)", who, e.From, e.CallID)
	case EventBusy:
		return fmt.Sprintf("%sbusy: refused the call from %s with 486", who, e.From)
	case EventAnswered:
		return who + "answered, playing the prompt"
	case EventPromptDone:
		return who + "prompt done, echoing"
	case EventDigit:
		return fmt.Sprintf("%sdigit %s", who, e.Digits)
	case EventDigits:
		return fmt.Sprintf("%sdigits %s", who, e.Digits)
	case EventEnded:
		return fmt.Sprintf("%sended: %v", who, e.Reason)
	case EventError:
		if who == "" {
			who = "bot: "
		}
		return fmt.Sprintf("%serror: %v", who, e.Err)
	}
	return who + e.Kind.String()
}

// DefaultPrompt returns the prompt played when Config.Prompt is nil: two
// short beeps (a 660 Hz and an 880 Hz tone of 200 ms each, 100 ms apart),
// 500 ms in all.
func DefaultPrompt() []int16 {
	out := make([]int16, 0, wav.SampleRate/2)
	beep := func(hz float64, d time.Duration) {
		n := int(d * wav.SampleRate / time.Second)
		for i := range n {
			out = append(out, int16(8000*math.Sin(2*math.Pi*hz*float64(i)/wav.SampleRate)))
		}
	}
	beep(660, 200*time.Millisecond)
	out = append(out, make([]int16, wav.SampleRate/10)...)
	beep(880, 200*time.Millisecond)
	return out
}

// Bot answers calls. Create it with New; Run it, or hand it invitations
// with Handle. Its methods are safe for concurrent use.
type Bot struct {
	cfg     Config
	log     *slog.Logger
	factory media.Factory
	events  queue
	ready   chan struct{}
	readyMu sync.Once

	mu      sync.Mutex
	calls   map[int]*call
	next    int
	closing bool
	wg      sync.WaitGroup // the calls' goroutines
}

// New checks cfg and returns a Bot.
func New(cfg Config) (*Bot, error) {
	if cfg.URI == "" {
		return nil, fmt.Errorf("%w: URI is required", ErrConfig)
	}
	if _, err := message.ParseURI(cfg.URI); err != nil {
		return nil, fmt.Errorf("%w: URI %q: %w", ErrConfig, cfg.URI, err)
	}
	for _, a := range cfg.Accounts {
		if _, err := message.ParseURI(a.URI); err != nil {
			return nil, fmt.Errorf("%w: account URI %q: %w", ErrConfig, a.URI, err)
		}
	}
	switch {
	case cfg.MaxCalls < 0:
		return nil, fmt.Errorf("%w: negative MaxCalls", ErrConfig)
	case cfg.MaxCalls == 0:
		cfg.MaxCalls = DefaultMaxCalls
	}
	switch {
	case cfg.MaxCallDuration < 0:
		return nil, fmt.Errorf("%w: negative MaxCallDuration", ErrConfig)
	case cfg.MaxCallDuration == 0:
		cfg.MaxCallDuration = DefaultMaxCallDuration
	}
	switch {
	case cfg.EchoDelay < 0 || cfg.EchoDelay > maxEchoBuffer/2:
		return nil, fmt.Errorf("%w: EchoDelay %v is not within 0 and %v", ErrConfig, cfg.EchoDelay, maxEchoBuffer/2)
	case cfg.EchoDelay == 0:
		cfg.EchoDelay = DefaultEchoDelay
	}
	if cfg.Prompt == nil {
		cfg.Prompt = DefaultPrompt()
	}
	if cfg.DigitsEnd == 0 {
		cfg.DigitsEnd = '#'
	}
	if cfg.UserAgentString == "" {
		cfg.UserAgentString = "sipua-bot"
	}
	b := &Bot{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), calls: map[int]*call{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Media {
	case RTP, "":
		b.cfg.Media = RTP
		b.factory = rtp.NewFactory(cfg.RTP)
	case WebRTC:
		b.factory = webrtc.NewFactory(cfg.WebRTC)
	default:
		return nil, fmt.Errorf("%w: media %q (rtp or webrtc)", ErrConfig, cfg.Media)
	}
	return b, nil
}

// MediaFactory returns the factory of the bot's media handlers, for a
// UserAgent whose invitations go to Handle.
func (b *Bot) MediaFactory() media.Factory { return b.factory }

// Ready is closed once Run has registered (or started, with NoRegister).
func (b *Bot) Ready() <-chan struct{} { return b.ready }

// Run starts a UserAgent, registers it (unless NoRegister), answers calls
// until ctx ends, then hangs up the calls in progress, unregisters and
// stops. It returns nil after a clean stop at ctx's end, or the error
// that kept the bot from starting or registering: it wraps
// sip.ErrAuthFailed when the credentials are refused, and
// sip.ErrTransportClosed, sip.ErrTimeout or sip.ErrCanceled when the
// server cannot be reached before ctx ends.
func (b *Bot) Run(ctx context.Context) error {
	if len(b.cfg.Accounts) > 0 {
		return b.runStack(ctx)
	}
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   b.cfg.URI,
		AuthorizationUsername: b.cfg.AuthorizationUsername,
		AuthorizationPassword: b.cfg.Password,
		Transport: sip.TransportOptions{
			Server:    b.cfg.Server,
			Listen:    b.cfg.Listen,
			TLSConfig: b.cfg.TLSConfig,
		},
		UserAgentString: b.cfg.UserAgentString,
		Logger:          b.cfg.Logger,
		Tracer:          b.cfg.Tracer,
		MediaFactory:    b.factory,
		Delegate:        sip.UserAgentDelegate{OnInvite: b.Handle},
		Observer:        b.cfg.Observer,
	})
	if err != nil {
		return fmt.Errorf("botcore: %w", err)
	}
	defer b.events.wait()
	// Stop also when Start fails: a UserAgent whose server was not
	// reached in time goes on trying in the background until stopped.
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(stopCtx)
	}()
	if err := ua.Start(ctx); err != nil {
		return fmt.Errorf("botcore: start: %w", err)
	}
	var reg *sip.Registerer
	if !b.cfg.NoRegister {
		reg, err = sip.NewRegisterer(ua, sip.RegistererOptions{})
		if err != nil {
			return fmt.Errorf("botcore: %w", err)
		}
		if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
			return fmt.Errorf("botcore: register %s: %w", b.cfg.URI, err)
		}
	}
	b.readyMu.Do(func() { close(b.ready) })
	b.emit(Event{Kind: EventRegistered})
	<-ctx.Done()

	// Stop: no new calls, hang up the others, unregister.
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.Close(stopCtx)
	if reg != nil {
		if err := reg.Unregister(stopCtx, sip.UnregisterOptions{}); err != nil {
			b.log.Warn("unregister failed", "err", err)
		}
	}
	b.emit(Event{Kind: EventUnregistered})
	return nil
}

// runStack is Run for several accounts: one sip.Stack, a UserAgent on it
// per account.
func (b *Bot) runStack(ctx context.Context) error {
	stack, err := sip.NewStack(sip.StackOptions{
		Transport: sip.TransportOptions{
			Server:    b.cfg.Server,
			Listen:    b.cfg.Listen,
			TLSConfig: b.cfg.TLSConfig,
		},
		UserAgentString: b.cfg.UserAgentString,
		Logger:          b.cfg.Logger,
		Tracer:          b.cfg.Tracer,
		Observer:        b.cfg.Observer,
	})
	if err != nil {
		return fmt.Errorf("botcore: %w", err)
	}
	defer b.events.wait()
	// Stop also when Start fails (see Run): every account with it.
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stack.Stop(stopCtx)
	}()
	if err := stack.Start(ctx); err != nil {
		return fmt.Errorf("botcore: start: %w", err)
	}
	accounts := append([]Account{{URI: b.cfg.URI, AuthorizationUsername: b.cfg.AuthorizationUsername, Password: b.cfg.Password}}, b.cfg.Accounts...)
	regs := make([]*sip.Registerer, len(accounts))
	for i, a := range accounts {
		ua, err := stack.NewUserAgent(sip.UserAgentOptions{
			URI:                   a.URI,
			AuthorizationUsername: a.AuthorizationUsername,
			AuthorizationPassword: a.Password,
			UserAgentString:       b.cfg.UserAgentString,
			MediaFactory:          b.factory,
			Delegate:              sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { b.handle(inv, a.URI) }},
		})
		if err != nil {
			return fmt.Errorf("botcore: account %s: %w", a.URI, err)
		}
		if err := ua.Start(ctx); err != nil {
			return fmt.Errorf("botcore: start %s: %w", a.URI, err)
		}
		if !b.cfg.NoRegister {
			if regs[i], err = sip.NewRegisterer(ua, sip.RegistererOptions{}); err != nil {
				return fmt.Errorf("botcore: %w", err)
			}
		}
	}
	if !b.cfg.NoRegister {
		err := eachAccount(regs, func(i int, r *sip.Registerer) error {
			if err := r.Register(ctx, sip.RegisterOptions{}); err != nil {
				return fmt.Errorf("botcore: register %s: %w", accounts[i].URI, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	b.readyMu.Do(func() { close(b.ready) })
	b.emit(Event{Kind: EventRegistered})
	<-ctx.Done()

	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.Close(stopCtx)
	if !b.cfg.NoRegister {
		_ = eachAccount(regs, func(i int, r *sip.Registerer) error {
			if err := r.Unregister(stopCtx, sip.UnregisterOptions{}); err != nil {
				b.log.Warn("unregister failed", "account", accounts[i].URI, "err", err)
			}
			return nil
		})
	}
	b.emit(Event{Kind: EventUnregistered})
	return nil
}

// eachAccount runs f for every registerer, registerWorkers at a time, and
// returns the first error.
func eachAccount(regs []*sip.Registerer, f func(int, *sip.Registerer) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(regs))
	work := make(chan int)
	for range min(registerWorkers, len(regs)) {
		wg.Go(func() {
			for i := range work {
				errs[i] = f(i, regs[i])
			}
		})
	}
	for i := range regs {
		work <- i
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// Close refuses new calls (486), hangs up those in progress and waits
// for them to end and for OnEvent to have seen their last events, or for
// ctx.
func (b *Bot) Close(ctx context.Context) {
	b.mu.Lock()
	b.closing = true
	calls := make([]*call, 0, len(b.calls))
	for _, c := range b.calls {
		calls = append(calls, c)
	}
	b.mu.Unlock()
	for _, c := range calls {
		c.hangup(ctx)
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		b.events.waitCtx(ctx)
	case <-ctx.Done():
	}
}

// CallStatus describes a call in progress.
type CallStatus struct {
	Call    int
	CallID  string
	From    string
	Started time.Time
	State   sip.SessionState
	// Echoing is true once the prompt has been played.
	Echoing bool
	// Digits are all the digits received so far.
	Digits string
}

// Calls returns the calls in progress, by number.
func (b *Bot) Calls() []CallStatus {
	b.mu.Lock()
	calls := make([]*call, 0, len(b.calls))
	for _, c := range b.calls {
		calls = append(calls, c)
	}
	b.mu.Unlock()
	out := make([]CallStatus, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// Handle takes an incoming call: it answers it (or refuses it with 486
// when MaxCalls calls are in progress or the bot is closing) and serves
// it on a goroutine of its own; it returns at once. It is the OnInvite
// of Run's UserAgent; a UserAgent of the application's whose
// MediaFactory is b.MediaFactory() may call it too.
func (b *Bot) Handle(inv *sip.Invitation) { b.handle(inv, "") }

// handle is Handle for a call to account ("" when the bot has one).
func (b *Bot) handle(inv *sip.Invitation, account string) {
	from := inv.Request.Header.Get("From")
	if a, err := inv.Request.Header.From(); err == nil {
		from = a.URI.String()
	}
	callID := inv.Request.Header.Get("Call-ID")
	b.mu.Lock()
	if b.closing || len(b.calls) >= b.cfg.MaxCalls {
		b.mu.Unlock()
		_ = inv.Reject(context.Background(), 486, "")
		b.emit(Event{Kind: EventBusy, CallID: callID, From: from, Account: account})
		return
	}
	b.next++
	c := &call{bot: b, n: b.next, inv: inv, from: from, account: account, callID: callID, started: time.Now()}
	b.calls[c.n] = c
	b.wg.Add(1)
	b.mu.Unlock()
	b.emit(c.event(EventIncoming))
	go c.serve()
}

// emit queues an event for OnEvent.
func (b *Bot) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.log.Info(e.String(), "kind", e.Kind.String(), "call", e.Call)
	if f := b.cfg.OnEvent; f != nil {
		b.events.push(func() { f(e) })
	}
}

// call is one call the bot serves.
type call struct {
	bot     *Bot
	n       int
	inv     *sip.Invitation
	from    string
	account string
	callID  string
	started time.Time
	src     *source

	mu      sync.Mutex
	digits  strings.Builder // all digits
	pending strings.Builder // the current group
}

func (c *call) event(k EventKind) Event {
	return Event{Kind: k, Call: c.n, CallID: c.callID, From: c.from, Account: c.account}
}

func (c *call) status() CallStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CallStatus{
		Call: c.n, CallID: c.callID, From: c.from, Started: c.started,
		State: c.inv.State(), Echoing: c.src != nil && c.src.echoing(), Digits: c.digits.String(),
	}
}

// serve answers the call and waits for its end.
func (c *call) serve() {
	b := c.bot
	defer func() {
		b.mu.Lock()
		delete(b.calls, c.n)
		b.mu.Unlock()
		b.wg.Done()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	src := newSource(b.cfg.Prompt, b.cfg.EchoDelay, func() { b.emit(c.event(EventPromptDone)) })
	c.mu.Lock()
	c.src = src
	c.mu.Unlock()
	if err := c.attach(src); err != nil {
		_ = c.inv.Reject(ctx, 488, "")
		e := c.event(EventError)
		e.Err = err
		b.emit(e)
		return
	}
	c.inv.SetDelegate(sip.SessionDelegate{OnDTMF: func(tone rune, _ time.Duration) { c.digit(tone) }})
	_ = c.inv.Progress(ctx, sip.ProgressOptions{})
	if err := c.inv.Accept(ctx, sip.AcceptOptions{Media: media.Options{Constraints: media.Constraints{Audio: true}}}); err != nil {
		// The caller canceled meanwhile, or the offer was unusable (the
		// call has been rejected then).
		e := c.event(EventError)
		e.Err = fmt.Errorf("answer: %w", err)
		b.emit(e)
		if c.inv.State() != sip.SessionTerminated {
			c.hangup(ctx)
		}
		<-c.inv.Done()
	} else {
		b.emit(c.event(EventAnswered))
		timer := time.NewTimer(b.cfg.MaxCallDuration)
		defer timer.Stop()
		select {
		case <-c.inv.Done():
		case <-timer.C:
			b.log.Info("call too long: hanging up", "call", c.n)
			hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.hangup(hctx)
			hcancel()
			<-c.inv.Done()
		}
	}
	c.mu.Lock()
	left := c.pending.String()
	c.pending.Reset()
	c.mu.Unlock()
	if left != "" {
		e := c.event(EventDigits)
		e.Digits = left
		b.emit(e)
	}
	e := c.event(EventEnded)
	e.Reason = c.inv.EndReason()
	b.emit(e)
}

// hangup ends the call: BYE when established, else 480 or nothing.
func (c *call) hangup(ctx context.Context) {
	switch c.inv.State() {
	case sip.SessionInitial, sip.SessionEstablishing:
		if err := c.inv.Reject(ctx, 480, ""); err == nil {
			return
		}
		_ = c.inv.Bye(ctx) // answered meanwhile
	case sip.SessionEstablished:
		_ = c.inv.Bye(ctx)
	}
}

// attach sets the call's audio source and receivers on its handler.
func (c *call) attach(src *source) error {
	switch h := c.inv.MediaHandler().(type) {
	case *rtp.Handler:
		h.SetAudioSource(src)
		h.OnAudio(src.received)
		h.OnDTMF(func(tone rune, _ time.Duration) { c.digit(tone) })
	case *webrtc.Handler:
		h.SetAudioSource(src)
		h.OnRTP(func(_ *pion.TrackRemote, p *pionrtp.Packet) { src.receivedG711(p.PayloadType, p.Payload) })
		h.OnDTMF(func(tone rune, _ time.Duration) { c.digit(tone) })
	case nil:
		return errors.New("the call has no media handler")
	default:
		return fmt.Errorf("media handler %T is neither media/rtp's nor media/webrtc's", h)
	}
	return nil
}

// digit records a DTMF digit.
func (c *call) digit(tone rune) {
	c.mu.Lock()
	c.digits.WriteRune(tone)
	c.pending.WriteRune(tone)
	var group string
	if tone == c.bot.cfg.DigitsEnd {
		group = c.pending.String()
		c.pending.Reset()
	}
	c.mu.Unlock()
	e := c.event(EventDigit)
	e.Digits = string(tone)
	c.bot.emit(e)
	if group != "" {
		e := c.event(EventDigits)
		e.Digits = group
		c.bot.emit(e)
	}
}

// source is a call's audio: the prompt, then the caller's audio echoed.
type source struct {
	prompt     *wav.Source
	onPrompted func()
	delay      int // samples buffered before the echo starts

	mu     sync.Mutex
	echo   bool    // the prompt is over
	buf    []int16 // received audio waiting to be echoed
	primed bool
}

func newSource(prompt []int16, delay time.Duration, onPrompted func()) *source {
	return &source{
		prompt:     wav.NewSource(prompt, false),
		onPrompted: onPrompted,
		delay:      int(delay * wav.SampleRate / time.Second),
	}
}

func (s *source) echoing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echo
}

// ReadSamples plays the prompt, then the echo; silence when there is
// nothing to echo. It never blocks and never fails.
func (s *source) ReadSamples(p []int16) (int, error) {
	s.mu.Lock()
	if !s.echo {
		s.mu.Unlock()
		n, err := s.prompt.ReadSamples(p)
		if err == nil && n == len(p) {
			return n, nil
		}
		clear(p[n:])
		s.mu.Lock()
		s.echo = true
		s.buf = s.buf[:0]
		s.mu.Unlock()
		s.onPrompted()
		return len(p), nil
	}
	defer s.mu.Unlock()
	if !s.primed && len(s.buf) >= s.delay+len(p) {
		s.primed = true
	}
	if !s.primed || len(s.buf) < len(p) {
		s.primed = false // an underrun: build the delay up again
		clear(p)
		return len(p), nil
	}
	copy(p, s.buf)
	s.buf = append(s.buf[:0], s.buf[len(p):]...)
	return len(p), nil
}

// received queues audio from the caller for the echo (dropped during the
// prompt; the oldest dropped beyond a second).
func (s *source) received(samples []int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.echo {
		return
	}
	s.buf = append(s.buf, samples...)
	if limit := int(maxEchoBuffer * wav.SampleRate / time.Second); len(s.buf) > limit {
		s.buf = append(s.buf[:0], s.buf[len(s.buf)-limit:]...)
	}
}

// receivedG711 decodes a PCMU (0) or PCMA (8) payload and queues it;
// other payload types (telephone-event, Opus) are not echoed.
func (s *source) receivedG711(pt uint8, payload []byte) {
	if pt != 0 && pt != 8 {
		return
	}
	pcm := make([]int16, len(payload))
	for i, v := range payload {
		if pt == 0 {
			pcm[i] = webrtc.DecodeMuLaw(v)
		} else {
			pcm[i] = webrtc.DecodeALaw(v)
		}
	}
	s.received(pcm)
}

// queue runs functions one at a time, in order, on a goroutine that
// exists only while there is work.
type queue struct {
	mu      sync.Mutex
	items   []func()
	running bool
	idle    chan struct{} // closed when the queue drains; nil while idle
}

func (q *queue) push(f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, f)
	if !q.running {
		q.running = true
		q.idle = make(chan struct{})
		go q.drain()
	}
}

func (q *queue) drain() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			close(q.idle)
			q.mu.Unlock()
			return
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		f()
	}
}

// wait returns when the queue is idle.
func (q *queue) wait() { q.waitCtx(context.Background()) }

// waitCtx returns when the queue is idle or ctx ends.
func (q *queue) waitCtx(ctx context.Context) {
	q.mu.Lock()
	idle := q.idle
	running := q.running
	q.mu.Unlock()
	if running {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
}
