package sipserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// DefaultDomain is the domain a Server serves when Options.Domain is
// empty. The .test top-level domain is reserved (RFC 2606): it never
// resolves, so nothing leaves the machine by accident.
const DefaultDomain = "sipua.test"

// Options configures a Server. The zero value is an open registrar and
// proxy for DefaultDomain.
type Options struct {
	// Domain is the domain whose users register here and whose
	// Request-URIs the proxy looks up, e.g. "sipua.test". Requests for
	// other hosts are forwarded to them. Default: DefaultDomain.
	Domain string
	// Users maps user names to passwords. When it is non-nil, REGISTER
	// needs HTTP digest credentials (a 401 challenge first), only these
	// users may register, and a request for a user not in the map is
	// answered 404 (480 for a user without bindings). When nil, anyone may
	// register any user name, and a user that has never registered is
	// unknown (404).
	Users map[string]string
	// ProxyAuth also challenges (407) the out-of-dialog INVITE, MESSAGE,
	// SUBSCRIBE and REFER requests whose From is a user of Users, as a
	// proxy guarding its domain does. Ignored when Users is nil.
	ProxyAuth bool
	// Realm is the digest realm. Default: Domain.
	Realm string
	// NonceLifetime is how long a digest nonce is accepted; credentials
	// with an older one are challenged again with stale=true. Within it,
	// a nonce may be reused with increasing nonce counts (RFC 7616
	// §3.4.5). Default: 5 minutes, as digest.ServerOptions.
	NonceLifetime time.Duration
	// MinExpires is the shortest registration accepted; a REGISTER asking
	// for less is answered 423 with this Min-Expires. Default 10s;
	// negative: no minimum. It is rounded down to whole seconds.
	MinExpires time.Duration
	// MaxExpires caps (and is the default for) a registration's lifetime.
	// Default 1 hour.
	MaxExpires time.Duration
	// Listen lists what Start listens on, as "proto://ip:port" (udp, tcp,
	// tls, ws, wss), e.g. "ws://127.0.0.1:0". Default: UDP, TCP and WS on
	// 127.0.0.1 with ports chosen by the OS.
	Listen []string
	// Name labels the server in Ladder and Flow. Default "proxy".
	Name string
	// Logger receives debug records of the server and its transport. Nil:
	// silent.
	Logger *slog.Logger
	// ListenPacket opens the UDP sockets, as transport.Config.ListenPacket:
	// give it siptest.Network.PacketListener to run the server on the
	// in-memory network. Nil: the OS's sockets.
	ListenPacket func(ctx context.Context, network, address string) (net.PacketConn, error)
	// DialContext opens outbound TCP connections, as
	// transport.Config.DialContext. Nil: a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is the server configuration of TLS and WSS listeners (it
	// must hold a certificate); nil: those cannot be listened on.
	TLSConfig *tls.Config
	// OnEvent, when set, is called for every message the server receives
	// or sends, in the order of Trace, one call at a time, on the server's
	// goroutine: print the event and return. It must not call the
	// Server's methods (they wait for that goroutine).
	OnEvent func(Event)
	// TraceLimit is how many events Trace keeps; when it is reached the
	// oldest half is dropped. Default 10000; negative: none are kept
	// (OnEvent is still called).
	TraceLimit int
	// Tracer, when set, sees every message the server's transport sends
	// and receives, raw bytes included, as transport.Config.Tracer: give
	// it a trace.PcapWriter to capture the server's side of a test.
	Tracer trace.Tracer
}

// Protocol timers (RFC 3261 §17 and Table 4).
const (
	timerT1      = 500 * time.Millisecond
	timerT2      = 4 * time.Second
	timerB       = 64 * timerT1 // a client transaction's answer, Timer B/F
	timerC       = 3 * time.Minute
	lingerFinal  = 64 * timerT1    // state kept after a final response
	maxTxLife    = 4 * time.Minute // no transaction outlives this
	sendTimeout  = 5 * time.Second
	defaultLimit = 10000
)

// Server is a registrar and a record-routing, transaction-stateful proxy
// for one domain, meant for tests and demos. Create it with New, open
// listeners with Listen or Start, and Close it to stop all its goroutines.
// All methods are safe for concurrent use.
type Server struct {
	opts      Options
	domain    string
	name      string
	log       *slog.Logger
	tr        *transport.Transport
	regAuth   *digest.Server
	proxyAuth *digest.Server
	min, max  time.Duration

	ctx    context.Context // ends at Close: bounds every send
	cancel context.CancelFunc
	work   chan func()
	quit   chan struct{}
	done   chan struct{}
	closed sync.Once

	mu        sync.Mutex // guards listeners
	listeners []listener

	traceMu sync.Mutex // guards events and names
	events  []Event
	names   map[peerKey]string

	// Owned by the loop goroutine.
	bindings  map[string][]*binding // by user
	known     map[string]bool       // users that have registered once
	wsFlows   map[string]transport.Flow
	servers   map[string]*serverTx
	clients   map[string]*clientTx
	timer     *time.Timer
	nextSweep time.Time
}

type listener struct {
	proto transport.Proto
	addr  netip.AddrPort
}

// New returns a Server configured by opts. It starts the server's
// goroutine but opens no socket: call Listen or Start.
func New(opts Options) (*Server, error) {
	s := &Server{
		opts:     opts,
		domain:   opts.Domain,
		name:     opts.Name,
		log:      opts.Logger,
		min:      opts.MinExpires,
		max:      opts.MaxExpires,
		work:     make(chan func(), 64),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		names:    map[peerKey]string{},
		bindings: map[string][]*binding{},
		known:    map[string]bool{},
		wsFlows:  map[string]transport.Flow{},
		servers:  map[string]*serverTx{},
		clients:  map[string]*clientTx{},
	}
	if s.domain == "" {
		s.domain = DefaultDomain
	}
	if s.name == "" {
		s.name = "proxy"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case s.min == 0:
		s.min = 10 * time.Second
	case s.min < 0:
		s.min = 0
	}
	s.min = s.min.Truncate(time.Second)
	if s.max <= 0 {
		s.max = time.Hour
	}
	if s.min > s.max {
		return nil, fmt.Errorf("sipserver: MinExpires %v above MaxExpires %v", s.min, s.max)
	}
	if opts.Users != nil {
		realm := opts.Realm
		if realm == "" {
			realm = s.domain
		}
		lookup := func(user string) (digest.Credentials, bool) {
			pw, ok := opts.Users[user]
			return digest.Credentials{Password: pw}, ok
		}
		var err error
		if s.regAuth, err = digest.NewServer(digest.ServerOptions{Realm: realm, Lookup: lookup, NonceLifetime: opts.NonceLifetime}); err != nil {
			return nil, fmt.Errorf("sipserver: %w", err)
		}
		if opts.ProxyAuth {
			if s.proxyAuth, err = digest.NewServer(digest.ServerOptions{Realm: realm, Lookup: lookup, Proxy: true, NonceLifetime: opts.NonceLifetime}); err != nil {
				return nil, fmt.Errorf("sipserver: %w", err)
			}
		}
	}
	s.tr = transport.New(transport.Config{
		OnMessage:       func(in transport.Incoming) { s.post(func() { s.onMessage(in) }) },
		OnConn:          func(e transport.ConnEvent) { s.post(func() { s.onConn(e) }) },
		Logger:          opts.Logger,
		Tracer:          opts.Tracer,
		ListenPacket:    opts.ListenPacket,
		DialContext:     opts.DialContext,
		ServerTLSConfig: opts.TLSConfig,
	})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	go s.loop()
	return s, nil
}

// Domain returns the domain the server serves.
func (s *Server) Domain() string { return s.domain }

// AOR returns the address of record of user in the server's domain,
// e.g. "sip:alice@sipua.test".
func (s *Server) AOR(user string) string {
	return message.URI{Scheme: "sip", User: user, Host: s.domain}.String()
}

// Transport returns the server's transport, e.g. to mount its
// WebSocketHandler in an http.Server of one's own. Do not Close it.
func (s *Server) Transport() *transport.Transport { return s.tr }

// Listen opens a listener on addr ("127.0.0.1:0" picks a free port) for
// proto ("udp", "tcp", "tls", "ws" or "wss", in any case) and returns the
// address bound. WebSocket listeners accept connections on any path.
func (s *Server) Listen(ctx context.Context, proto transport.Proto, addr string) (netip.AddrPort, error) {
	p, ok := transport.ParseProto(string(proto))
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("sipserver: listen: unknown transport %q", proto)
	}
	ap, err := s.tr.Listen(ctx, p, addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sipserver: %w", err)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, listener{p, ap})
	s.mu.Unlock()
	s.log.Debug("sipserver listening", "proto", p, "addr", ap)
	return ap, nil
}

// Start listens on everything Options.Listen names (by default UDP, TCP
// and WS on 127.0.0.1, on ports the OS picks).
func (s *Server) Start(ctx context.Context) error {
	list := s.opts.Listen
	if len(list) == 0 {
		list = []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0", "ws://127.0.0.1:0"}
	}
	for _, l := range list {
		proto, addr, ok := strings.Cut(l, "://")
		if !ok {
			return fmt.Errorf("sipserver: listen %q: want proto://ip:port", l)
		}
		if _, err := s.Listen(ctx, transport.Proto(proto), addr); err != nil {
			return err
		}
	}
	return nil
}

// Addr returns the address of the first listener for proto, or the zero
// AddrPort when there is none.
func (s *Server) Addr(proto transport.Proto) netip.AddrPort {
	p, _ := transport.ParseProto(string(proto))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.proto == p {
			return l.addr
		}
	}
	return netip.AddrPort{}
}

// URI returns the SIP URI of the first listener for proto, e.g.
// "sip:127.0.0.1:5060;transport=udp": an outbound proxy or registrar
// address for a UA. It is the zero URI when there is no such listener.
func (s *Server) URI(proto transport.Proto) message.URI {
	p, _ := transport.ParseProto(string(proto))
	ap := s.Addr(p)
	if !ap.IsValid() {
		return message.URI{}
	}
	return message.URI{Scheme: "sip", Host: ap.Addr().String(), Port: int(ap.Port()),
		Params: message.Params("transport=" + p.Param())}
}

// WSURL returns the WebSocket URL of the first WS listener, e.g.
// "ws://127.0.0.1:40123", or "" when there is none.
func (s *Server) WSURL() string {
	ap := s.Addr(transport.WS)
	if !ap.IsValid() {
		return ""
	}
	return "ws://" + ap.String()
}

// Close closes every listener and connection and waits for all of the
// server's goroutines to end. Later calls do nothing and return nil.
func (s *Server) Close() error {
	var err error
	s.closed.Do(func() {
		s.cancel()
		close(s.quit)
		<-s.done
		err = s.tr.Close()
		if errors.Is(err, transport.ErrClosed) {
			err = nil
		}
	})
	return err
}

// post hands f to the loop; it gives up when the server closes.
func (s *Server) post(f func()) {
	select {
	case s.work <- f:
	case <-s.quit:
	}
}

// call runs f on the loop and waits for it; false if the server closed
// first.
func (s *Server) call(f func()) bool {
	ran := make(chan struct{})
	s.post(func() { f(); close(ran) })
	select {
	case <-ran:
		return true
	case <-s.quit:
		return false
	}
}

// loop owns the registrar's and the proxy's state: everything the server
// does happens here, one message or timer at a time.
func (s *Server) loop() {
	defer close(s.done)
	defer s.timer.Stop()
	for {
		select {
		case <-s.quit:
			return
		case f := <-s.work:
			f()
		case <-s.timer.C:
			s.onTimer(time.Now())
		}
		s.arm()
	}
}

// arm sets the timer to the earliest deadline of the state.
func (s *Server) arm() {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, c := range s.clients {
		earlier(c.retransmitAt)
		earlier(c.timeout)
		earlier(c.expires)
	}
	for _, st := range s.servers {
		earlier(st.expires)
		earlier(st.retransmitAt)
	}
	earlier(s.nextSweep)
	if next.IsZero() {
		s.timer.Stop()
		return
	}
	s.timer.Reset(max(time.Until(next), 0))
}

func (s *Server) onConn(e transport.ConnEvent) {
	if e.State != transport.ConnClosed {
		return
	}
	// A binding that can only be reached over its flow (a WebSocket
	// client's .invalid contact) dies with the flow (RFC 5626 §7).
	for user, bs := range s.bindings {
		kept := bs[:0]
		for _, b := range bs {
			if b.flow == e.Flow && !reachable(b.contact.URI) {
				s.log.Debug("sipserver: binding gone with its flow", "user", user, "contact", b.contact.URI.String())
				continue
			}
			kept = append(kept, b)
		}
		s.setBindings(user, kept)
	}
	for host, f := range s.wsFlows {
		if f == e.Flow {
			delete(s.wsFlows, host)
		}
	}
}

// self reports whether a URI names this server: the domain, or one of the
// listeners' addresses.
func (s *Server) self(u message.URI) bool {
	if strings.EqualFold(u.Host, s.domain) {
		return true
	}
	return s.ourAddr(u)
}

// ourAddr reports whether u names a listener: its IP, its port (none
// means the transport's default) and its transport (none means UDP, or
// TLS for sips).
func (s *Server) ourAddr(u message.URI) bool {
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return false
	}
	proto := transport.UDP
	if u.Scheme == "sips" {
		proto = transport.TLS
	}
	if tp, ok := u.Params.Get("transport"); ok {
		if proto, ok = transport.ParseProto(tp); !ok {
			return false
		}
		if u.Scheme == "sips" && proto == transport.WS {
			proto = transport.WSS
		}
	}
	port := uint16(u.Port)
	if port == 0 {
		port = proto.DefaultPort()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.proto == proto && l.addr.Port() == port && (l.addr.Addr() == ip.Unmap() || l.addr.Addr().IsUnspecified()) {
			return true
		}
	}
	return false
}

// listenerFor returns the address of a listener for proto, or an invalid
// one.
func (s *Server) listenerFor(p transport.Proto) netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.proto == p {
			return l.addr
		}
	}
	return netip.AddrPort{}
}
