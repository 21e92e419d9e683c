// Package sip is an embeddable SIP user agent with the model of SIP.js:
// a UserAgent (one SIP endpoint: its address, transport, credentials and
// delegate callbacks), a Registerer (REGISTER and its refreshes), a
// Messager (MESSAGE), OPTIONS requests, and the calls of Inviter,
// Invitation and Session.
//
// A UserAgent owns one goroutine, its event loop, that holds all protocol
// state: transactions, dialogs, registrations. Transports post what they
// receive to it, timers live in one heap inside it, and public methods post
// their work to it and wait for the result or for their context (an
// error from the context wraps ErrCanceled and the context's error).
//
// Many accounts in one process share one loop: a Stack owns the sockets,
// the server connection, the event loop and the transaction layer, and
// the UserAgents made with Stack.NewUserAgent are accounts on it, each
// with its own address, credentials, Contact, delegate and callback
// lanes; goroutines and buffers then do not grow with the accounts.
//
// Application code never runs on the loop, nor while the package holds a
// lock. Delegate callbacks, state listeners and the handler calls the
// stack makes by itself (applying a remote answer, Close) run on callback
// lanes: one for the UserAgent (UserAgentDelegate, the listeners of the
// UserAgent, Registerer, Subscriber, Publisher) and one per call (its
// state listeners, SessionDelegate, progress and early media). A lane runs
// its callbacks one at a time and in order; lanes do not wait for each
// other, so a slow callback delays only the later callbacks of its lane.
// A callback may call any method, Stop included (Stop does not wait for
// the lane it is called from); a callback that blocks holds up only its
// own lane. The media handler calls of the application's own requests
// (Invite, Accept, Hold …) run on the caller's goroutine with the
// caller's context.
//
// Lifecycles end: after Stop returns, every Session's Done is closed (with
// EndStopped when its BYE or CANCEL got no answer in time), Invite has a
// no-answer bound (InviterOptions.NoAnswerTimeout), and a BYE waits for the
// ACK of our 2xx (RFC 3261 §15) and for a transfer's final NOTIFY.
//
// The event loop never waits on the network. It hands each message to a
// write queue of its connection, drained by that connection's writer
// goroutine, or to a UDP socket, and goes on; a full queue (a peer that
// does not read) or a write that fails later comes back to the
// transaction as a transport error. What can take long, RFC 3263 DNS
// look-ups and opening connections (TCP, TLS and WebSocket handshakes),
// runs on goroutines of its own that post the outcome back to the loop;
// meanwhile the transaction waits with its timers running, and its
// messages go out when the connection is up. So one unreachable or slow
// destination delays only the requests sent to it, never other calls,
// retransmissions or answers to other requests.
//
// The layers below are packages of their own: message (parsing and
// writing), transport (UDP, TCP, TLS, WebSocket), digest (authentication),
// and the internal transaction and dialog machines. The siptest package is
// a test kit with an in-memory network.
package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// UserAgentOptions configures a UserAgent. Only URI is required; every
// other field has a documented default. For an account on a Stack
// (Stack.NewUserAgent), Transport, Tracer, Timers,
// Limits.MaxServerTransactions and AcceptOnlyFromServer are the Stack's
// (see Stack.NewUserAgent).
type UserAgentOptions struct {
	// URI is the address of record, e.g. "sip:alice@example.com".
	// Required.
	URI string
	// DisplayName goes into From (and Contact) when set.
	DisplayName string
	// AuthorizationUsername is the user name for digest authentication.
	// Default: the user part of URI.
	AuthorizationUsername string
	// AuthorizationPassword is the password for digest authentication.
	AuthorizationPassword string
	// AuthorizationHA1, if set, is used instead of the password: it
	// returns the hex H(username:realm:password) for the realm and
	// algorithm, so the application need not hold the password.
	AuthorizationHA1 func(realm, algorithm string) (string, error)
	// Credentials, if set, is asked for the credentials of each realm
	// that challenges a request, each time one does: passwords can change
	// while the UserAgent runs, and realms can have their own. It replaces
	// the three Authorization fields above. It runs on the UserAgent's
	// event loop and must return quickly (no network look-ups).
	Credentials func(realm string) (digest.Credentials, error)
	// Transport says how to reach the network.
	Transport TransportOptions
	// UserAgentString is sent in User-Agent and Server headers. Default
	// "sipua". "-" sends none.
	UserAgentString string
	// ContactName is the user part of the Contact. Default: a random
	// token, as SIP.js does.
	ContactName string
	// ContactParams are extra Contact URI parameters, e.g. "ob".
	ContactParams message.Params
	// InstanceID is the RFC 5626 instance ID ("urn:uuid:…"). When set,
	// registrations carry +sip.instance and reg-id (outbound).
	InstanceID string
	// Logger receives the user agent's logs. Nil: silent.
	Logger *slog.Logger
	// Tracer, when set, sees every SIP message the UserAgent sends
	// (retransmissions and stateless answers included) and receives, with
	// time, transport, addresses and raw bytes; package trace has writers
	// for pcap, a text log and call ladders. It is called synchronously on
	// the sending or receiving goroutine, in causal order, with no lock
	// held: it must be fast, safe for concurrent use, and must not call
	// back into the UserAgent. Nil: nothing is traced, at no cost.
	//
	// Messages are traced verbatim, credentials included: the
	// Authorization and Proxy-Authorization fields carry the digest
	// response (a hash of the password that can be cracked offline) or a
	// Basic password. Wrap the Tracer in trace.Redact to keep them out of
	// the trace.
	Tracer trace.Tracer
	// Delegate receives incoming requests and connection changes.
	Delegate UserAgentDelegate
	// Timers are the RFC 3261 timers. Zero fields: the defaults.
	Timers Timers
	// SessionTimers configure the session timers (RFC 4028) of calls;
	// InviterOptions and AcceptOptions may override them per call. The
	// zero value: on, 1800 s asked for, Min-SE 90 s.
	SessionTimers SessionTimerOptions
	// CallRecoveryTimeout is how long an established call survives the
	// loss of the connection to the server: the UserAgent reconnects,
	// registers again, and re-INVITEs each call with its new Contact (and
	// an ICE restart), reporting Session.OnMediaStateChange; a call not
	// moved in time ends with EndConnectionLost. Zero:
	// DefaultCallRecoveryTimeout; negative: calls are left alone.
	CallRecoveryTimeout time.Duration
	// AcceptOnlyFromServer, when set, makes the UserAgent take requests
	// only from its server (Transport.Server or Servers: the registrar or
	// outbound proxy): on the current connection to it over TCP, TLS, WS
	// and WSS, from its address over UDP. Requests from anywhere else,
	// such as scanners probing for phones to ring ("ghost calls"), are
	// dropped unanswered and never reach the delegate. In-dialog
	// requests of the UserAgent's own dialogs (a BYE sent straight to the
	// Contact when the proxy does not record-route) and CANCELs of its
	// pending calls are taken from anywhere: their Call-ID and random
	// tags cannot be guessed. NewUserAgent fails with
	// ErrBadOptions when no server is configured. Default false: requests
	// from anyone are taken, as a UserAgent that is called directly needs.
	AcceptOnlyFromServer bool
	// Limits bounds the server transactions and pending incoming calls;
	// the zero value selects the defaults (see Limits).
	Limits Limits
	// MediaFactory makes the media handler of each call: WebRTC on pion
	// for browsers (media/webrtc's NewFactory), plain RTP/AVP for phones
	// and trunks (media/rtp's NewFactory), or an application's own. Nil,
	// like NoMedia: calls carry no session descriptions (signalling only).
	// The choice is explicit so that this package links no media stack:
	// a program that never names media/webrtc does not link pion/webrtc.
	MediaFactory media.Factory
	// Observer receives call, transaction, connection and registration
	// events for metrics (see Observer and metrics/prom). Default nil:
	// nothing is reported.
	Observer *Observer
	// MediaHandlerTimeout bounds each call the UserAgent makes to a media
	// handler on its own (applying a description from the peer, answering
	// a re-INVITE or UPDATE, ICE gathering included); a handler that fails
	// or overruns ends the call (EndMediaFailure, ErrMedia) or refuses the
	// offer with 488. Calls made from the application's own methods
	// (Invite, Accept …) use their context instead. Zero:
	// DefaultMediaHandlerTimeout.
	MediaHandlerTimeout time.Duration
}

// DefaultMediaHandlerTimeout is UserAgentOptions.MediaHandlerTimeout's default.
const DefaultMediaHandlerTimeout = 15 * time.Second

// TransportOptions says how a UserAgent reaches the network.
type TransportOptions struct {
	// Server is the server the UserAgent keeps a connection to and sends
	// every request through (SIP.js's transportOptions.server):
	// "wss://sip.example.com/ws", "ws://…", or a SIP URI such as
	// "sip:proxy.example.com;transport=tcp", "sip:192.0.2.1:5060"
	// (UDP) or "sips:proxy.example.com". Empty: no server; requests go
	// where their Route or Request-URI resolves (RFC 3263), and the
	// UserAgent receives on Listen.
	Server string
	// Servers lists several servers for failover, by Priority (lower
	// first) then Weight. It replaces Server when set.
	Servers []ServerOption
	// Listen lists local addresses to receive on, as URIs:
	// "udp://127.0.0.1:5060", "tcp://…", "tls://…", "ws://…",
	// "wss://…"; port 0 picks a free port. Needed to receive requests
	// without a Server.
	Listen []string
	// TLSConfig is used for wss:, sips: and TLS. Nil: the system roots,
	// verification on.
	TLSConfig *tls.Config
	// ServerTLSConfig is the certificate for tls:// and wss:// Listen
	// addresses.
	ServerTLSConfig *tls.Config
	// KeepaliveInterval is how often the server connection is probed
	// (CRLF ping or WebSocket ping). Default: the transport's (30 s).
	KeepaliveInterval time.Duration
	// KeepaliveTimeout is how long a pong may take before the connection
	// is declared dead. Default: the transport's (10 s).
	KeepaliveTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the back-off between
	// reconnection attempts. Defaults: the transport's (1 s, 30 s).
	ReconnectMin, ReconnectMax time.Duration
	// ReconnectAttempts bounds the attempts in a row; 0: unlimited.
	ReconnectAttempts int
	// MaxConns caps the inbound connections of the Listen addresses
	// together (slowloris and connection floods); one over the cap is
	// closed at once. Default 1024 (see transport.Config.MaxConns);
	// negative: no cap.
	MaxConns int
	// ReadTimeout is the longest time one message may take to arrive on
	// a connection once its first byte is read, and the limit for a TLS
	// or WebSocket handshake of an inbound connection: a peer that
	// trickles bytes is cut off. Default 10 s; negative: none.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection on which nothing at all has been
	// received for this long. Default 5 minutes; negative: never.
	IdleTimeout time.Duration
	// MessageLimits bounds the messages received (size, header count,
	// line length, body). The zero value selects the message package's
	// defaults (64 KiB per message). A request over the limits is
	// answered statelessly (400; 413 for the body, 414 for the
	// Request-URI, 513 for the whole message) when its Via, From, To,
	// Call-ID and CSeq can be read within them, and dropped otherwise; a
	// stream connection whose framing it breaks is closed after the
	// answer.
	MessageLimits message.Limits
	// ListenPacket, when set, opens the UserAgent's UDP sockets instead
	// of the operating system (see transport.Config.ListenPacket): those
	// of udp:// Listen addresses and any opened to send over UDP. Tests
	// use siptest.Network.PacketListener to run UserAgents on an
	// in-memory network, on virtual time inside testing/synctest.
	ListenPacket func(ctx context.Context, network, address string) (net.PacketConn, error)
	// DialContext, when set, opens the TCP connections under outbound
	// TCP, TLS, WS and WSS connections instead of a net.Dialer (see
	// transport.Config.DialContext): tests use it for in-memory
	// connections or a peer that never answers.
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)
	// DNS, when set, answers the RFC 3263 look-ups (SRV, A/AAAA) instead
	// of net.DefaultResolver.
	DNS transport.DNS
	// WriteQueue is how many messages may wait to be written on one
	// connection before a send fails at once with transport.ErrQueueFull
	// (see transport.Config.WriteQueue). Default 1024 for a UserAgent;
	// a Stack's default is DefaultStackWriteQueue, as its connection
	// carries every account's messages.
	WriteQueue int
}

// ServerOption is one server of TransportOptions.Servers.
type ServerOption struct {
	Address  string
	Priority int
	Weight   int
}

// Timers holds the RFC 3261 timer values; zero fields take the defaults
// (T1 500 ms, T2 4 s, T4 5 s).
type Timers struct {
	T1, T2, T4 time.Duration
}

// UserAgentDelegate receives what a UserAgent cannot decide alone. Every
// field is optional; a nil field selects the documented default. The
// callbacks run one at a time on the UserAgent's callback lane (OnInvite
// on the new call's lane), never under a lock; they may call any method of
// the package, Stop included.
type UserAgentDelegate struct {
	// OnConnect is called when the connection to the server is up.
	OnConnect func()
	// OnDisconnect is called when it is lost, or when connecting fails
	// (the first connection, or the next after Reconnect), with the
	// reason: once per outage, and again if the UserAgent gives up
	// (transport.ErrGaveUp: ReconnectAttempts used up, or a server
	// certificate that does not verify). Otherwise the UserAgent
	// reconnects by itself.
	OnDisconnect func(err error)
	// OnInvite receives an incoming call. The callback (or any goroutine
	// later) answers it with Progress, Accept or Reject; until then the
	// caller hears it ringing only if Progress is called. Nil: 480.
	OnInvite func(inv *Invitation)
	// OnMessage receives an out-of-dialog MESSAGE. Nil: answered 405 and
	// MESSAGE is left out of Allow.
	OnMessage func(m *IncomingRequest)
	// OnNotify receives a NOTIFY outside any subscription of this
	// UserAgent (unsolicited, e.g. message-summary). Nil: 481.
	OnNotify func(n *IncomingRequest)
	// OnRefer receives an out-of-dialog REFER (RFC 3515). The callback
	// answers it (202 to accept) and reports progress itself. Nil: 405.
	OnRefer func(r *IncomingRequest)
	// OnSubscribe receives an out-of-dialog SUBSCRIBE (RFC 6665), to be
	// accepted or rejected; see IncomingSubscription. Nil: SUBSCRIBE is
	// answered 405 (or given to OnRequest) and left out of Allow.
	OnSubscribe func(s *IncomingSubscription)
	// OnRequest receives any other out-of-dialog request the UserAgent
	// does not handle itself (OPTIONS is answered automatically). Nil:
	// 405 for methods RFC 3261 knows, 501 for others, with Allow.
	OnRequest func(r *IncomingRequest)
}

// UserAgentState is the state of a UserAgent.
type UserAgentState int

// UserAgent states, as SIP.js's.
const (
	Stopped UserAgentState = iota
	Started
)

func (s UserAgentState) String() string {
	if s == Started {
		return "Started"
	}
	return "Stopped"
}

const defaultUserAgentString = "sipua"

// UserAgent is one SIP endpoint. Create it with NewUserAgent, then Start
// it. All methods are safe for concurrent use.
//
// A UserAgent made with NewUserAgent has its own transport and event
// loop; one made with Stack.NewUserAgent is an account on a Stack and
// shares the Stack's (see Stack).
type UserAgent struct {
	// core is the event loop and what it owns (see core): the
	// UserAgent's own, or its Stack's.
	*core

	opts   UserAgentOptions
	limits Limits
	aor    message.URI
	stack  *Stack // nil: a core of its own
	log    *slog.Logger
	cbq    callbackQueue // the UserAgent's own callback lane
	lanes  lanes         // every callback lane of the UserAgent

	mu        sync.Mutex // guards state (and its listeners' order)
	state     UserAgentState
	listeners listeners[UserAgentState]
	stopOnce  sync.Once
	connected atomic.Bool
	// phase: uaNew until Start, uaStarted, then uaStopped (for good).
	phase atomic.Int32
	// quit closes when the UserAgent stops (its core may go on serving
	// other accounts).
	quit chan struct{}
	// recoveries are the goroutines moving calls to a new connection.
	recoveries sync.WaitGroup

	// Owned by the event loop, besides core: the UserAgent's usages.
	contactName string
	// contactStr is the Contact value on the first Listen address,
	// formatted once (see contactString).
	contactStr  string
	auth        authorizer
	registerers map[*Registerer]struct{}
	sessions    map[*Session]struct{}
	invitations map[*transaction.Server]*Invitation
	// unanswered are the incoming SUBSCRIBEs given to OnSubscribe and
	// not answered yet (Stop answers them).
	unanswered map[*IncomingSubscription]struct{}
	wasUp      bool
	// downReported: OnDisconnect was called for the current outage.
	downReported bool
	// lostFlow: the connection was up when the current Disconnected
	// event came (between onDisconnected and afterDisconnected).
	lostFlow bool
	// detached: the UserAgent has left its core (Stop): what it left on
	// the loop (timers, posted work, late responses) is dropped.
	detached bool
}

const (
	uaNew int32 = iota
	uaStarted
	uaStopped
)

type listenAddr struct {
	proto transport.Proto
	addr  netip.AddrPort
}

// NewUserAgent checks opts and returns a stopped UserAgent with a
// transport and event loop of its own.
func NewUserAgent(opts UserAgentOptions) (*UserAgent, error) {
	ua, err := newUserAgent(opts)
	if err != nil {
		return nil, err
	}
	if ua.opts.AcceptOnlyFromServer && ua.opts.Transport.Server == "" && len(ua.opts.Transport.Servers) == 0 {
		return nil, fmt.Errorf("%w: AcceptOnlyFromServer needs Transport.Server or Servers", ErrBadOptions)
	}
	ua.core = newCore(coreConfig{
		log:                  ua.log,
		transport:            ua.opts.Transport,
		timers:               ua.opts.Timers,
		tracer:               ua.opts.Tracer,
		observer:             ua.opts.Observer,
		userAgentString:      ua.opts.UserAgentString,
		acceptOnlyFromServer: ua.opts.AcceptOnlyFromServer,
		limits:               ua.limits,
	})
	ua.lanes.inline = &ua.core.inline
	return ua, nil
}

// newUserAgent checks opts and fills in the defaults that do not depend
// on the transport.
func newUserAgent(opts UserAgentOptions) (*UserAgent, error) {
	aor, err := message.ParseURI(opts.URI)
	if err != nil {
		return nil, fmt.Errorf("%w: URI: %w", ErrBadOptions, err)
	}
	if !aor.IsSIP() || aor.Host == "" {
		return nil, fmt.Errorf("%w: URI %q is not a sip: or sips: address", ErrBadOptions, opts.URI)
	}
	if opts.UserAgentString == "" {
		opts.UserAgentString = defaultUserAgentString
	}
	if opts.AuthorizationUsername == "" {
		opts.AuthorizationUsername = aor.User
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ua := &UserAgent{
		opts:        opts,
		limits:      opts.Limits.norm(),
		aor:         aor,
		log:         log,
		contactName: opts.ContactName,
		quit:        make(chan struct{}),
	}
	if ua.contactName == "" {
		ua.contactName = message.NewTag()
	}
	ua.cbq.set = &ua.lanes
	return ua, nil
}

// URI returns the address of record.
func (ua *UserAgent) URI() message.URI { return ua.aor }

// State returns the current state.
func (ua *UserAgent) State() UserAgentState {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	return ua.state
}

// IsConnected reports whether the connection to the server is up (always
// true after Start without a Server).
func (ua *UserAgent) IsConnected() bool { return ua.connected.Load() }

// OnStateChange adds a listener for state changes and returns a function
// that removes it. Listeners run on the UserAgent's callback lane, in the
// order they were added.
func (ua *UserAgent) OnStateChange(f func(UserAgentState)) (remove func()) {
	return ua.listeners.add(f)
}

func (ua *UserAgent) setState(s UserAgentState) {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	ua.state = s
	ua.listeners.notify(s, ua.cbq.push)
}

// post hands f to the event loop, to run unless the UserAgent has left
// it by then.
func (ua *UserAgent) post(f func()) {
	ua.core.post(func() {
		if !ua.detached {
			f()
		}
	})
}

// call runs f on the event loop and waits for it, for ctx, or for the
// UserAgent to stop. f does not run once the UserAgent has left the loop.
func (ua *UserAgent) call(ctx context.Context, f func()) error {
	return ua.callOn(ctx, f, nil)
}

// loopRunner is what callRunner runs on the loop: a struct holding the
// inputs and results of the work costs one allocation where a closure
// writing to its caller's variables costs one for the closure and one
// for each variable.
type loopRunner interface{ runOnLoop() }

// callRunner is call with r.runOnLoop for f.
func (ua *UserAgent) callRunner(ctx context.Context, r loopRunner) error {
	return ua.callOn(ctx, nil, r)
}

// callOn is call of f, or of r when f is nil.
func (ua *UserAgent) callOn(ctx context.Context, f func(), r loopRunner) error {
	if ua.phase.Load() == uaNew {
		return ErrNotStarted
	}
	c := ua.core
	if c.tryOwn() {
		// The loop is idle: do the work here.
		var err error
		select {
		case <-ua.quit:
			err = ErrStopped
		default:
			switch {
			case ua.detached:
				err = ErrStopped
			case ctx.Err() != nil:
				err = canceled(ctx)
			default:
				c.tp.Batch(func() {
					if f != nil {
						f()
					} else {
						r.runOnLoop()
					}
				})
			}
		}
		c.release()
		c.kick()
		return err
	}
	lc, _ := c.calls.Get().(*loopCall)
	if lc == nil {
		lc = &loopCall{done: make(chan struct{}, 1)}
		lc.run = lc.exec
	}
	lc.ua, lc.f, lc.r = ua, f, r
	select {
	case <-ua.quit:
		lc.release(c) // never queued
		return ErrStopped
	case <-c.quit:
		lc.release(c)
		return ErrStopped
	default:
	}
	if ctx.Err() != nil {
		lc.release(c)
		return canceled(ctx)
	}
	if !c.enqueue(lc.run) {
		lc.release(c)
		return ErrStopped
	}
	c.kick()
	var err error
	select {
	case <-lc.done:
		lc.release(c)
		return nil
	case <-ua.quit:
		err = ErrStopped
	case <-c.quit:
		err = ErrStopped
	case <-ctx.Done():
		err = canceled(ctx)
	}
	// f may have run although the stop or the context came first to
	// this select: what it did counts.
	select {
	case <-lc.done:
		lc.release(c)
		return nil
	default:
		// lc may still run: it is not reused.
		return err
	}
}

// loopCall is what UserAgent.call posts to the loop: f, and a channel
// that tells it ran. Once the caller has seen it run it is reused (see
// core.calls), so that a call allocates neither a closure nor a channel.
type loopCall struct {
	ua   *UserAgent
	f    func()
	r    loopRunner    // when f is nil
	done chan struct{} // buffered: exec's send never waits
	run  func()        // lc.exec, made once
}

// exec runs on the loop; it touches lc no more after its send.
func (lc *loopCall) exec() {
	if lc.ua.detached {
		return
	}
	if lc.f != nil {
		lc.f()
	} else {
		lc.r.runOnLoop()
	}
	lc.done <- struct{}{}
}

// release gives lc back for reuse: never posted, or its caller has
// received from done.
func (lc *loopCall) release(c *core) {
	lc.ua, lc.f, lc.r = nil, nil, nil
	c.calls.Put(lc)
}

// after runs f on the loop after d, unless the UserAgent has left it.
func (ua *UserAgent) after(d time.Duration, f func()) *timerEntry {
	return ua.afterAt(time.Now().Add(d), f)
}

// afterAt runs f on the loop at t, unless the UserAgent has left it.
func (ua *UserAgent) afterAt(t time.Time, f func()) *timerEntry {
	return ua.timers.add(t, func() {
		if !ua.detached {
			f()
		}
	})
}

// Start starts the transport and the event loop. With a Server it waits
// until the first connection is up or ctx ends; if ctx ends first, Start
// returns an error wrapping ErrTransportClosed, ctx's error and the last
// connection attempt's error (errors.As finds a *net.OpError for a
// refused or unreachable server), and the UserAgent goes on trying to
// connect in the background (Stop ends that). A server certificate that
// does not verify (errors.As finds *tls.CertificateVerificationError) is
// no outage to wait out: Start returns it at once and the UserAgent stops
// trying. OnDisconnect reports the failure too, once per outage. A UserAgent starts
// once; Start on a started or stopped one fails with ErrInvalidState.
//
// A UserAgent on a Stack (Stack.NewUserAgent) only attaches to the
// Stack, which must be started: no socket, connection or goroutine is
// made for it. It waits for the Stack's server connection as above, and
// OnConnect is called at once when that connection is up.
func (ua *UserAgent) Start(ctx context.Context) error {
	ua.mu.Lock()
	select {
	case <-ua.quit:
		ua.mu.Unlock()
		return fmt.Errorf("%w: stopped", ErrInvalidState)
	default:
	}
	if ua.phase.Load() != uaNew {
		ua.mu.Unlock()
		return fmt.Errorf("%w: already started", ErrInvalidState)
	}
	ua.mu.Unlock()
	if ua.stack != nil {
		return ua.stack.attach(ctx, ua)
	}
	// Before the event loop runs, a failure leaves the UserAgent as if
	// never started, so that Stop returns at once instead of waiting for
	// a loop that does not exist.
	if err := ua.core.start(ctx); err != nil {
		return err
	}
	if !ua.phase.CompareAndSwap(uaNew, uaStarted) {
		ua.core.stop()
		return fmt.Errorf("%w: already started", ErrInvalidState)
	}
	ua.init()
	_ = ua.call(context.Background(), func() { ua.accounts.add(ua) })
	ua.setState(Started)
	up, err := ua.core.connect()
	if err != nil {
		ua.shutdown()
		return err
	}
	if up == nil {
		ua.connected.Store(true)
		return nil
	}
	if _, err := up.WaitConnected(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	return nil
}

// init makes the UserAgent's own maps, before it joins a loop.
func (ua *UserAgent) init() {
	ua.registerers = map[*Registerer]struct{}{}
	ua.sessions = map[*Session]struct{}{}
	ua.invitations = map[*transaction.Server]*Invitation{}
	ua.unanswered = map[*IncomingSubscription]struct{}{}
	ua.auth = newAuthorizer(ua.opts)
}

func parseListen(s string) (transport.Proto, string, error) {
	scheme, hostport, ok := strings.Cut(s, "://")
	if !ok {
		return "", "", fmt.Errorf("%w: listen address %q: want scheme://host:port", ErrBadOptions, s)
	}
	p, ok := transport.ParseProto(scheme)
	if !ok {
		return "", "", fmt.Errorf("%w: listen address %q: unknown transport", ErrBadOptions, s)
	}
	return p, hostport, nil
}

// Stop ends the UserAgent gracefully: calls are ended (see
// Session.Dispose), subscriptions are ended
// (unsubscribed, or terminated with reason noresource) and registrations
// removed, each waiting for its answer until ctx ends, then the transport
// is closed and the event loop ends. A call that could not be ended in
// time (no answer to its BYE or CANCEL, a 2xx whose ACK is awaited) ends
// with EndStopped; a subscription or registration whose peer did not
// answer in time is then SubscriptionTerminated or RegistererTerminated
// all the same, its state listeners told. It returns when everything has
// stopped and every
// callback has returned; no goroutine is left. Stop may be called from a
// callback: the lane it runs on is then not waited for. Stop is
// idempotent.
//
// A UserAgent on a Stack ends only its own calls, subscriptions and
// registrations and leaves the Stack; the Stack and its other accounts go
// on undisturbed.
func (ua *UserAgent) Stop(ctx context.Context) error {
	// A callback may call Stop: its own lane is not waited for.
	defer ua.lanes.enterStop()()
	if ua.phase.Load() == uaNew {
		// Never started: it stays so (calls fail with ErrNotStarted),
		// and cannot start any more.
		ua.mu.Lock()
		select {
		case <-ua.quit:
		default:
			close(ua.quit)
		}
		ua.mu.Unlock()
		ua.stopOnce.Do(func() {})
		if ua.stack != nil {
			ua.stack.forget(ua)
		}
		return nil
	}
	var regs []*Registerer
	var subs []*Subscriber
	var incoming []*IncomingSubscription
	var sessions []*Session
	_ = ua.call(ctx, func() {
		for s := range ua.sessions {
			sessions = append(sessions, s)
		}
		for r := range ua.registerers {
			regs = append(regs, r)
		}
		for _, u := range ua.usages {
			if u.account() != ua {
				continue
			}
			switch s := u.(type) {
			case *Subscriber:
				subs = append(subs, s)
			case *IncomingSubscription:
				incoming = append(incoming, s)
			}
		}
	})
	// Calls and subscriptions end first (their requests may need the
	// registration's connection), then registrations.
	for _, s := range sessions {
		_ = s.Dispose(ctx)
	}
	for _, s := range subs {
		if st := s.State(); st == SubscriptionActive || st == SubscriptionPending {
			_ = s.Unsubscribe(ctx)
		}
	}
	for _, s := range incoming {
		if st := s.State(); st == SubscriptionActive || st == SubscriptionPending {
			_ = s.Terminate(ctx, "noresource")
		}
	}
	for _, r := range regs {
		if r.State() == Registered {
			_ = r.Unregister(ctx, UnregisterOptions{})
		}
		r.dispose()
	}
	ua.shutdown()
	return nil
}

func (ua *UserAgent) shutdown() {
	ua.stopOnce.Do(func() {
		_ = ua.call(context.Background(), func() {
			// Every call ends here: those Stop could not end gracefully
			// in time end with EndStopped.
			for s := range ua.sessions {
				s.stopped()
			}
			ua.endUsages()
			if ua.stack != nil {
				// The loop goes on for the other accounts: what is left
				// of this one's requests (unanswered by now) ends here.
				var left []*transaction.Client
				for tx, o := range ua.outgoing {
					if o.ua == ua {
						left = append(left, tx)
					}
				}
				for _, tx := range left {
					ua.layer.Abandon(tx)
				}
				// Requests to it still unanswered (a callback that
				// stopped it without answering) are answered here, so
				// that their transactions end.
				ua.layer.Unanswered(func(tx *transaction.Server) {
					if req := tx.Request(); req != nil && req.Method != "ACK" && ua.accountFor(req) == ua {
						ua.reply(tx, 480, "", nil)
					}
				})
			}
			ua.accounts.remove(ua)
			ua.detached = true
		})
		ua.mu.Lock()
		ua.phase.Store(uaStopped)
		close(ua.quit)
		ua.mu.Unlock()
		if ua.stack == nil {
			ua.core.stop()
		} else {
			ua.stack.forget(ua)
		}
		ua.recoveries.Wait()
		ua.connected.Store(false)
		ua.setState(Stopped)
		ua.lanes.wait()
		ua.lanes.close()
	})
}

// endUsages ends, at Stop, every subscription and registration that
// Stop's graceful part could not end (the peer never answered the
// un-SUBSCRIBE, the terminating NOTIFY or the un-REGISTER in time): their
// state listeners are told, and nothing of theirs is sent any more. Runs
// on the loop.
func (ua *UserAgent) endUsages() {
	var subs []*Subscriber
	var incoming []*IncomingSubscription
	for _, u := range ua.usages {
		if u.account() != ua {
			continue
		}
		switch s := u.(type) {
		case *Subscriber:
			subs = append(subs, s)
		case *IncomingSubscription:
			incoming = append(incoming, s)
		}
	}
	for k := range ua.claims {
		if s, ok := k.(*Subscriber); ok && s.ua == ua {
			subs = append(subs, s) // its first SUBSCRIBE is unanswered
		}
	}
	for _, s := range subs {
		s.terminate()
	}
	for s := range ua.unanswered {
		// Still in OnSubscribe: the SUBSCRIBE gets 503 (RFC 3261
		// §21.5.4: the service is going away), the subscription ends, and
		// the application's late Accept or Reject gets ErrStopped.
		delete(ua.unanswered, s)
		s.stopped.Store(true)
		if s.answered.CompareAndSwap(false, true) {
			if err := ua.respond(s.tx, ua.newResponse(s.Request, 503, "")); err != nil {
				ua.log.Debug("sip: 503 to an unanswered SUBSCRIBE at Stop not sent", "err", err)
			}
		}
		s.end()
	}
	for _, s := range incoming {
		for _, j := range s.queue {
			if j.done != nil {
				j.done(ErrStopped)
			}
		}
		s.queue = nil
		s.end()
	}
	for r := range ua.registerers {
		r.wanted = false
		ua.timers.stop(r.refresh)
		delete(ua.registerers, r)
		r.setState(RegistererTerminated)
	}
}

// Reconnect drops the connection to the server and connects again at
// once, as SIP.js's reconnect(); registrations are renewed on the new
// connection by themselves. It waits until the new connection is up or
// ctx ends; the error then wraps the last connection attempt's error.
// On a Stack, the connection is the Stack's: every account on it
// reconnects and renews its registrations.
func (ua *UserAgent) Reconnect(ctx context.Context) error {
	var up *transport.Upstream
	if err := ua.call(ctx, func() { up = ua.up }); err != nil {
		return err
	}
	if up == nil {
		return fmt.Errorf("%w: no server configured", ErrInvalidState)
	}
	n := up.Reconnect()
	if _, err := up.WaitReconnected(ctx, n); err != nil {
		return fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	return nil
}

// onConnected follows the server connection coming up; a new
// connection's re-registration starts after delay. Runs on the loop.
func (ua *UserAgent) onConnected(delay time.Duration) {
	ua.connected.Store(true)
	ua.downReported = false
	if d := ua.opts.Delegate.OnConnect; d != nil {
		ua.cbq.push(d)
	}
	if ua.wasUp {
		// A new flow: registrations are renewed on it, then the calls
		// are moved to it.
		if delay > 0 {
			ua.after(delay, func() { ua.reregister(ua.onFlowRestored) })
		} else {
			ua.reregister(ua.onFlowRestored)
		}
	}
	ua.wasUp = true
}

// onDisconnected reports the loss of the server connection (or a failure
// to connect). Runs on the loop.
func (ua *UserAgent) onDisconnected(ev transport.StateEvent) {
	was := ua.connected.Swap(false)
	ua.lostFlow = was
	// An outage is reported once: when a connection is lost, or when
	// the first attempts fail (the first connection, or the next one
	// after Reconnect), and again when the Upstream gives up.
	closed := errors.Is(ev.Err, transport.ErrClosed)
	report := was || (!closed && !ua.downReported) || errors.Is(ev.Err, transport.ErrGaveUp)
	if report {
		ua.downReported = true
		if d := ua.opts.Delegate.OnDisconnect; d != nil {
			err := ev.Err
			ua.cbq.push(func() { d(err) })
		}
	}
}

// afterDisconnected starts moving the calls when the connection was lost
// (not when the core closed it), after the transactions on it failed.
// Runs on the loop.
func (ua *UserAgent) afterDisconnected(ev transport.StateEvent) {
	closed := errors.Is(ev.Err, transport.ErrClosed)
	if (ua.lostFlow && !closed) || errors.Is(ev.Err, transport.ErrGaveUp) {
		ua.onFlowLost(ev.Err)
	}
	ua.lostFlow = false
}

// newResponse builds a response with the UserAgent's Server header.
func (ua *UserAgent) newResponse(req *message.Request, code int, reason string) *message.Response {
	return ua.newResponseTag(req, code, reason, "")
}

// newResponseTag is newResponse with the To tag to add (a dialog's; ""
// for a new random one).
func (ua *UserAgent) newResponseTag(req *message.Request, code int, reason, toTag string) *message.Response {
	resp := message.NewResponse(req, code, reason, toTag)
	if ua.opts.UserAgentString != "-" {
		resp.Header.Add("Server", ua.opts.UserAgentString)
	}
	return resp
}

// ContactURI returns the URI other user agents reach this one at: its
// Contact on the current connection, or on its first Listen address.
func (ua *UserAgent) ContactURI() message.URI {
	var u message.URI
	if err := ua.call(context.Background(), func() { u = ua.contactAddress().URI }); err != nil {
		return message.URI{}
	}
	return u
}

// NoMedia is a media factory for calls without session descriptions
// (signalling only): INVITEs and answers carry no body. A session
// description offer received (an INVITE, re-INVITE or UPDATE with an
// application/sdp body) cannot be answered: it is refused with 488 Not
// Acceptable Here rather than accepted with a 2xx that has no answer (RFC
// 3264 §6); other bodies are ignored.
func NoMedia(media.SessionInfo) (media.Handler, error) { return nil, nil }

// isOffer reports whether req carries a session description.
func isOffer(req *message.Request) bool {
	return len(req.Body) > 0 && strings.EqualFold(req.Header.MediaType(), "application/sdp")
}
