package transport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// Transport sends and receives SIP messages over UDP, TCP, TLS, WS and
// WSS. It keeps one connection per destination and reuses it, including
// connections peers opened to it. All methods are safe for concurrent use.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	maxMsg int           // largest message accepted on a stream
	linger time.Duration // see lingerTimeout
	wsHost string        // random "….invalid" Via and Contact host for WS

	ctx    context.Context // ends at Close; parent of dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Transport started
	// readers numbers the UDP readers (Then.Run).
	readers atomic.Uint64

	mu        sync.Mutex
	closed    bool
	nextID    uint64
	conns     map[connKey]*conn // by transport and remote address
	byID      map[uint64]*conn
	dialing   map[connKey]*dialCall
	udp       []*udpSock
	listeners []io.Closer
	listening map[Proto]netip.AddrPort // first listener of each transport
	inbound   int                      // inbound connections, for MaxConns
	srcIP     map[netip.Addr]netip.Addr

	// Batch: while holds > 0, UDP datagrams of TrySend… wait in held.
	bmu   sync.Mutex
	holds int
	held  []held

	stats stats
	// batchHook, set by tests before any socket opens, replaces the
	// batch reader and writer of new sockets.
	batchHook func(net.PacketConn) batchConn
	// idleShrink: see udpReader (tests shorten it).
	idleShrink time.Duration
}

type connKey struct {
	proto Proto
	addr  netip.AddrPort
}

type dialCall struct {
	done chan struct{}
	c    *conn
	err  error
}

// New returns a Transport configured by cfg. It starts no goroutine and
// opens no socket until Listen or a send needs one.
func New(cfg Config) *Transport {
	t := &Transport{
		cfg:       cfg.norm(),
		conns:     map[connKey]*conn{},
		byID:      map[uint64]*conn{},
		dialing:   map[connKey]*dialCall{},
		listening: map[Proto]netip.AddrPort{},
		srcIP:     map[netip.Addr]netip.Addr{},
	}
	t.log = t.cfg.Logger
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.maxMsg = t.cfg.Limits.MaxMessageSize
	if t.maxMsg < 0 {
		t.maxMsg = 16 << 20
	}
	t.wsHost = randomHost()
	t.linger = lingerTimeout
	t.idleShrink = idleShrink
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

func randomHost() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents so)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:]) + ".invalid"
}

// InvalidHost returns the random host name ending in ".invalid" that this
// Transport puts in Via sent-by and Contact on WebSocket flows, as RFC
// 7118 §5 asks of WebSocket clients, which have no reachable address.
func (t *Transport) InvalidHost() string { return t.wsHost }

// Listen opens a server side: a UDP socket, or a TCP, TLS, WS or WSS
// listener, on addr ("127.0.0.1:5060", ":0" …). TLS and WSS need
// Config.ServerTLSConfig. It returns the address actually bound (with the
// port the OS chose for port 0). The listener runs until Close.
func (t *Transport) Listen(ctx context.Context, proto Proto, addr string) (netip.AddrPort, error) {
	if t.isClosed() {
		return netip.AddrPort{}, ErrClosed
	}
	var lc net.ListenConfig
	switch proto {
	case UDP:
		pc, err := t.cfg.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("transport: listen UDP %s: %w", addr, err)
		}
		s, err := t.addUDP(pc)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return s.local, nil
	case TCP, TLS, WS, WSS:
		if proto.Secure() && t.cfg.ServerTLSConfig == nil {
			return netip.AddrPort{}, fmt.Errorf("transport: listen %s: Config.ServerTLSConfig is nil: %w", proto, ErrUnsupported)
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("transport: listen %s %s: %w", proto, addr, err)
		}
		local := addrPortOf(l.Addr())
		ll := &limitListener{Listener: l, t: t}
		switch proto {
		case TCP, TLS:
			if !t.addListener(proto, local, l, func() { t.acceptLoop(ll, proto) }) {
				return netip.AddrPort{}, ErrClosed
			}
		default:
			srv := &http.Server{
				Handler:           t.WebSocketHandler(),
				ReadHeaderTimeout: t.cfg.ReadTimeout,
				MaxHeaderBytes:    16 << 10,
				ErrorLog:          slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
				ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
					return context.WithValue(ctx, countedKey{}, true)
				},
			}
			var nl net.Listener = ll
			if proto == WSS {
				nl = tls.NewListener(ll, t.cfg.ServerTLSConfig)
			}
			if !t.addListener(proto, local, httpCloser{srv}, func() { _ = srv.Serve(nl) }) {
				l.Close()
				return netip.AddrPort{}, ErrClosed
			}
		}
		t.log.Debug("sip transport listening", "proto", proto, "addr", local)
		return local, nil
	}
	return netip.AddrPort{}, fmt.Errorf("transport: listen %q: %w", proto, ErrUnsupported)
}

type httpCloser struct{ srv *http.Server }

func (h httpCloser) Close() error { return h.srv.Close() }

// addListener records a listener and starts run, its serving goroutine,
// under t.mu so that Close either sees both or neither.
func (t *Transport) addListener(proto Proto, local netip.AddrPort, c io.Closer, run func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	t.listeners = append(t.listeners, c)
	if _, ok := t.listening[proto]; !ok {
		t.listening[proto] = local
	}
	t.wg.Go(run)
	return true
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close closes every listener, socket and connection, waits for the
// Transport's goroutines to end and reports the closed connections (with
// ErrClosed) through OnConn. Later calls return ErrClosed, as does every
// send after Close.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	t.closed = true
	ls := t.listeners
	socks := t.udp
	conns := make([]*conn, 0, len(t.byID))
	for _, c := range t.byID {
		conns = append(conns, c)
	}
	dials := make([]*dialCall, 0, len(t.dialing))
	for _, d := range t.dialing {
		dials = append(dials, d)
	}
	t.mu.Unlock()

	t.cancel()
	for _, l := range ls {
		l.Close()
	}
	for _, s := range socks {
		s.pc.Close()
		s.closeRelief()
	}
	for _, c := range conns {
		c.close(ErrClosed)
	}
	for _, d := range dials {
		<-d.done
	}
	t.wg.Wait()
	return nil
}

// CloseFlow closes the connection of a stream flow; its ConnClosed event
// carries ErrClosed. It returns ErrNoConnection if the connection is
// already gone. UDP flows have nothing to close.
func (t *Transport) CloseFlow(f Flow) error {
	t.mu.Lock()
	c := t.byID[f.ID]
	t.mu.Unlock()
	if c == nil || f.ID == 0 {
		return ErrNoConnection
	}
	c.close(ErrClosed)
	return nil
}

// Send writes msg as it is to target: over the connection target.ConnID
// names, over an existing connection to target's address, over a new
// connection, or from a UDP socket. It returns the flow used. Send does
// not touch the message; SendRequest and SendResponse add the Via
// handling a UA needs.
func (t *Transport) Send(ctx context.Context, msg message.Message, target Target) (Flow, error) {
	l, err := t.link(ctx, target)
	if err != nil {
		return Flow{}, err
	}
	return l.flow(), t.writeMsg(ctx, l, msg)
}

func (t *Transport) writeMsg(ctx context.Context, l link, msg message.Message) error {
	bp := getBuf()
	b := msg.AppendTo((*bp)[:0])
	if t.cfg.Tracer != nil {
		t.trace(trace.Sent, l.flow(), b, msg, nil)
	}
	err := l.write(ctx, b)
	if err != nil && t.cfg.Tracer != nil {
		t.trace(trace.SendFailed, l.flow(), b, msg, err)
	}
	*bp = b
	putBuf(bp)
	return err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufPool.Put(b)
	}
}

// link is a way to send: a stream connection or a UDP socket and peer.
type link interface {
	write(ctx context.Context, b []byte) error
	flow() Flow
}

// link finds or makes the link for target.
func (t *Transport) link(ctx context.Context, target Target) (link, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !target.Addr.IsValid() {
		return nil, fmt.Errorf("transport: send to %v: invalid address: %w", target, ErrUnsupported)
	}
	target.Addr = netip.AddrPortFrom(target.Addr.Addr().Unmap(), target.Addr.Port())
	switch target.Proto {
	case UDP:
		s, err := t.udpFor(ctx, target)
		if err != nil {
			return nil, err
		}
		return udpLink{s: s, to: target.Addr}, nil
	case TCP, TLS, WS, WSS:
		return t.streamConn(ctx, target)
	}
	return nil, fmt.Errorf("transport: send over %q: %w", target.Proto, ErrUnsupported)
}

// streamConn returns the connection for target, dialling one if needed.
// Concurrent callers for one destination share one dial.
func (t *Transport) streamConn(ctx context.Context, target Target) (*conn, error) {
	key := connKey{target.Proto, target.Addr}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if target.ConnID != 0 {
		c := t.byID[target.ConnID]
		t.mu.Unlock()
		if c == nil || c.isClosed() {
			return nil, fmt.Errorf("transport: connection %d to %v: %w", target.ConnID, target.Addr, ErrNoConnection)
		}
		return c, nil
	}
	if c := t.conns[key]; c != nil && !c.isClosed() {
		t.mu.Unlock()
		return c, nil
	}
	if d := t.dialing[key]; d != nil {
		t.mu.Unlock()
		select {
		case <-d.done:
			return d.c, d.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d := &dialCall{done: make(chan struct{})}
	t.dialing[key] = d
	t.mu.Unlock()

	c, err := t.dial(ctx, target)
	t.mu.Lock()
	delete(t.dialing, key)
	if err == nil && !t.register(c) {
		err = ErrClosed
	}
	t.mu.Unlock()
	if err != nil {
		if c != nil {
			c.closeNow()
		}
		c = nil
	}
	d.c, d.err = c, err
	close(d.done)
	return c, err
}

// register adds c to the maps and starts its goroutines, under t.mu (so
// Close waits for them); false if the Transport is closed.
func (t *Transport) register(c *conn) bool {
	if t.closed {
		return false
	}
	t.nextID++
	c.id = t.nextID
	c.f.ID = c.id
	t.byID[c.id] = c
	t.conns[connKey{c.f.Proto, c.f.Remote}] = c
	c.start()
	return true
}

func (t *Transport) unregister(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byID, c.id)
	k := connKey{c.f.Proto, c.f.Remote}
	if t.conns[k] == c {
		delete(t.conns, k)
	}
}

// dial opens a new outbound connection to target (not yet registered).
func (t *Transport) dial(ctx context.Context, target Target) (*conn, error) {
	ctx, cancel := t.dialContext(ctx)
	defer cancel()
	if target.Proto.WebSocket() {
		return t.dialWS(ctx, target)
	}
	nc, err := t.cfg.DialContext(ctx, "tcp", target.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("transport: dial %v: %w", target, err)
	}
	if target.Proto == TLS {
		tc := tls.Client(nc, t.clientTLS(target))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("transport: TLS handshake with %v: %w", target, err)
		}
		nc = tc
	}
	return t.newConn(nc, nil, target.Proto, false), nil
}

// dialContext bounds ctx by DialTimeout and by the Transport's life.
func (t *Transport) dialContext(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel1 context.CancelFunc = func() {}
	if t.cfg.DialTimeout > 0 {
		ctx, cancel1 = context.WithTimeout(ctx, t.cfg.DialTimeout)
	}
	ctx, cancel2 := context.WithCancel(ctx)
	stop := context.AfterFunc(t.ctx, cancel2)
	return ctx, func() { stop(); cancel2(); cancel1() }
}

func (t *Transport) clientTLS(target Target) *tls.Config {
	var cfg *tls.Config
	if t.cfg.TLSConfig != nil {
		cfg = t.cfg.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = target.Host
		if cfg.ServerName == "" {
			cfg.ServerName = target.Addr.Addr().String()
		}
	}
	return cfg
}

// SendRequest sends req to the first of targets that works (as Resolve
// returns them), trying the next one when a connection cannot be opened.
// It fills in the top Via as RFC 3261 §18.1.1 and RFC 3581 ask: the
// transport actually used, the local address (a random ".invalid" host on
// WebSocket, RFC 7118 §5) and an empty rport parameter; a request without
// a Via gets one with a new branch. A UDP request larger than
// UDPConfig.MaxRequestSize goes over TCP instead. req is modified and must
// not be used concurrently. It returns the flow used, which the layer
// above keeps to match responses and to send ACK or CANCEL the same way.
func (t *Transport) SendRequest(ctx context.Context, req *message.Request, targets ...Target) (Flow, error) {
	if len(targets) == 0 {
		return Flow{}, fmt.Errorf("transport: send %s: no target: %w", req.Method, ErrResolve)
	}
	var errs []error
	for _, tg := range targets {
		f, err := t.sendRequest(ctx, req, tg)
		if err == nil {
			return f, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrMessageTooLarge) {
			break
		}
	}
	return Flow{}, errors.Join(errs...)
}

func (t *Transport) sendRequest(ctx context.Context, req *message.Request, tg Target) (Flow, error) {
	if tg.Proto == UDP && t.cfg.UDP.MaxRequestSize > 0 && tg.ConnID == 0 {
		// RFC 3261 §18.1.1: large requests go over TCP. Measure with a
		// UDP Via first; the TCP one differs by a few bytes at most.
		if n := estimateSize(req); n > t.cfg.UDP.MaxRequestSize {
			tcp := tg
			tcp.Proto = TCP
			f, err := t.sendRequestOn(ctx, req, tcp)
			var ne *net.OpError
			if err == nil || !errors.As(err, &ne) || ctx.Err() != nil {
				return f, err
			}
			t.log.Debug("sip transport: TCP for a large request failed, using UDP", "target", tg, "err", err)
		}
	}
	return t.sendRequestOn(ctx, req, tg)
}

func estimateSize(req *message.Request) int {
	bp := getBuf()
	b := req.AppendTo((*bp)[:0])
	n := len(b)
	*bp = b
	putBuf(bp)
	return n + 40
}

func (t *Transport) sendRequestOn(ctx context.Context, req *message.Request, tg Target) (Flow, error) {
	l, err := t.link(ctx, tg)
	if err != nil {
		return Flow{}, err
	}
	f := l.flow()
	host, port := t.sentBy(f)
	setVia(&req.Header, f.Proto, host, port)
	if err := t.writeMsg(ctx, l, req); err != nil {
		return f, err
	}
	return f, nil
}

// setVia rewrites the top Via for sending over proto from host:port, or
// adds one.
func setVia(h *message.Header, proto Proto, host string, port int) {
	v, err := h.TopVia()
	if err != nil {
		v = message.Via{Params: message.Params("branch=" + message.NewBranch())}
	}
	v.Proto = message.Version
	v.Transport = string(proto)
	v.Host, v.Port = host, port
	if !v.Params.Has("rport") {
		v.Params = v.Params.Set("rport", "")
	}
	h.SetTopVia(v)
}

// sentBy returns the Via sent-by for a message sent on f: the random
// .invalid host on WebSocket; otherwise the local IP and, when the
// Transport listens on that transport, the listening port (where
// responses on a new connection should go), else the local port.
func (t *Transport) sentBy(f Flow) (string, int) {
	if f.Proto.WebSocket() {
		return t.wsHost, 0
	}
	ip := f.Local.Addr()
	port := int(f.Local.Port())
	t.mu.Lock()
	if lp, ok := t.listening[f.Proto]; ok && f.Proto != UDP {
		port = int(lp.Port())
	}
	if ip.IsUnspecified() || !ip.IsValid() {
		ip = t.sourceIPLocked(f.Remote.Addr())
	}
	t.mu.Unlock()
	return ip.String(), port
}

// sourceIPLocked returns the local address the OS would send to dst
// from, found with a connected UDP socket (no packet is sent) and cached.
func (t *Transport) sourceIPLocked(dst netip.Addr) netip.Addr {
	if ip, ok := t.srcIP[dst]; ok {
		return ip
	}
	ip := netip.IPv4Unspecified()
	if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9))); err == nil {
		ip = addrPortOf(c.LocalAddr()).Addr()
		c.Close()
	}
	if len(t.srcIP) > 256 {
		clear(t.srcIP)
	}
	t.srcIP[dst] = ip
	return ip
}

// SendResponse sends resp as RFC 3261 §18.2.2 and RFC 3581 say, for a
// request that arrived on flow: on the same connection if it is a stream
// and still open; otherwise to the top Via's received address (or
// sent-by host) and its rport (or sent-by port), over the Via's transport,
// from the UDP socket the request came in on. A WebSocket response whose
// connection is gone fails with ErrNoConnection. It returns the flow used.
func (t *Transport) SendResponse(ctx context.Context, resp *message.Response, flow Flow) (Flow, error) {
	if flow.Proto.Stream() && flow.ID != 0 {
		t.mu.Lock()
		c := t.byID[flow.ID]
		t.mu.Unlock()
		if c != nil && !c.isClosed() {
			return flow, t.writeMsg(ctx, c, resp)
		}
	}
	tg, err := t.responseTarget(ctx, resp, flow, true)
	if err != nil {
		return Flow{}, err
	}
	return t.Send(ctx, resp, tg)
}

// responseTarget returns where a response to a request that came on flow
// goes when that flow's connection is gone or for UDP (RFC 3261 §18.2.2,
// RFC 3581). Without lookup, a host name that needs DNS gives a
// *PendingError.
func (t *Transport) responseTarget(ctx context.Context, resp *message.Response, flow Flow, lookup bool) (Target, error) {
	v, err := resp.Header.TopVia()
	if err != nil {
		if flow.Proto == UDP && flow.Remote.IsValid() {
			// A Via we cannot read (the reason for a 400, often): answer
			// the datagram's source.
			return Target{Proto: UDP, Addr: flow.Remote, Local: flow.Local}, nil
		}
		return Target{}, fmt.Errorf("transport: response without a usable Via: %w", err)
	}
	proto, ok := ParseProto(v.Transport)
	if flow.Proto == UDP {
		// The request came as a datagram, whatever its Via claims: so
		// goes the answer.
		proto, ok = UDP, true
	}
	if !ok {
		return Target{}, fmt.Errorf("transport: response Via transport %q: %w", v.Transport, ErrUnsupported)
	}
	if proto.WebSocket() {
		return Target{}, fmt.Errorf("transport: response to a WebSocket client whose connection closed: %w", ErrNoConnection)
	}
	host := v.Received()
	if host == "" {
		host = v.Host
	}
	port := v.Port
	if rp, ok := v.RPort(); ok && rp > 0 {
		port = rp
	}
	if port == 0 {
		port = int(proto.DefaultPort())
	}
	var ips []netip.Addr
	if !lookup {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return Target{}, &PendingError{Target: Target{Proto: proto, Host: host}}
		}
		ips = []netip.Addr{ip.Unmap()}
	} else if ips, err = t.lookupIP(ctx, host); err != nil {
		return Target{}, err
	}
	tg := Target{Proto: proto, Addr: netip.AddrPortFrom(ips[0], uint16(port)), Host: host}
	if proto == UDP && flow.Proto == UDP {
		tg.Local = flow.Local
	}
	return tg, nil
}

// ContactURI returns a Contact URI for user on flow f: on WebSocket the
// random ".invalid" host with transport=ws (or wss), as RFC 7118 §5 asks;
// otherwise the address that Via sent-by uses, with a transport parameter
// for anything but UDP.
func (t *Transport) ContactURI(user string, f Flow) message.URI {
	host, port := t.sentBy(f)
	u := message.URI{Scheme: "sip", User: user, Host: host, Port: port}
	// The sip scheme is kept on TLS and WSS too (RFC 5630 §3.1.3: sips
	// would demand TLS on every hop); the transport parameter tells the
	// way back.
	if f.Proto != UDP && f.Proto != "" {
		u.Params = message.Params("transport=" + f.Proto.Param())
	}
	return u
}

// fixVia adds received and fills rport in the top Via of a request that
// came from src (RFC 3261 §18.2.1, RFC 3581 §4).
func fixVia(req *message.Request, src netip.AddrPort) {
	req.Header.SetReceivedFrom(src)
}

// trace reports one message to the Tracer.
func (t *Transport) trace(dir trace.Direction, f Flow, raw []byte, m message.Message, err error) {
	if ip := f.Local.Addr(); (ip.IsUnspecified() || !ip.IsValid()) && f.Remote.IsValid() {
		// A socket on a wildcard address: the trace names the address
		// the system sends from, as a capture would.
		t.mu.Lock()
		f.Local = netip.AddrPortFrom(t.sourceIPLocked(f.Remote.Addr()), f.Local.Port())
		t.mu.Unlock()
	}
	t.cfg.Tracer.Trace(trace.Event{
		Time: time.Now(), Dir: dir, Transport: string(f.Proto),
		Local: f.Local, Remote: f.Remote, ConnID: f.ID,
		Raw: raw, Message: m, Err: err,
	})
}

// incoming prepares a received unit (raw, parsed as m or failing with
// err) for the layer above: it fixes a request's Via, logs a parse error
// and shows the unit to the Tracer.
func (t *Transport) incoming(raw []byte, m message.Message, err error, f Flow) Incoming {
	if m == nil && err != nil {
		var pe *message.ParseError
		if errors.As(err, &pe) {
			m = pe.Message
		}
	}
	if req, ok := m.(*message.Request); ok {
		fixVia(req, f.Remote)
	}
	if err != nil {
		t.log.Debug("sip transport: malformed message", "flow", f, "err", err)
	}
	if t.cfg.Tracer != nil {
		t.trace(trace.Received, f, raw, m, err)
	}
	return Incoming{Msg: m, Err: err, Flow: f}
}

// emitUDP hands a UDP batch to OnMessagesThen, and returns the work it
// leaves, or to emit.
func (t *Transport) emitUDP(ins []Incoming) Then {
	if t.cfg.OnMessagesThen != nil {
		return t.cfg.OnMessagesThen(ins)
	}
	t.emit(ins)
	return nil
}

// emit hands received messages to OnMessages, or one by one to
// OnMessage.
func (t *Transport) emit(ins []Incoming) {
	if t.cfg.OnMessages != nil {
		t.cfg.OnMessages(ins)
		return
	}
	if t.cfg.OnMessage != nil {
		for _, in := range ins {
			t.cfg.OnMessage(in)
		}
	}
}

func (t *Transport) connEvent(e ConnEvent) {
	t.log.Debug("sip transport: connection "+e.State.String(), "flow", e.Flow, "inbound", e.Inbound, "err", e.Err)
	if t.cfg.OnConn != nil {
		t.cfg.OnConn(e)
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		if a != nil {
			ap, _ = netip.ParseAddrPort(a.String())
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
