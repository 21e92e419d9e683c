package transport

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// Config configures a Transport. Its zero value works: a Transport that
// drops what it receives, with the defaults documented on each field.
type Config struct {
	// OnMessage is called for every message received, on the reader
	// goroutine of its socket or connection, in order per connection. It
	// should hand the message to the caller's own loop and return: the
	// connection reads nothing more until it does. Nil drops messages.
	OnMessage func(Incoming)
	// OnMessages, when set, is called instead of OnMessage with several
	// messages at once: those of one batch read from a UDP socket (up to
	// UDPConfig.BatchSize datagrams taken in one system call), or one
	// message of a stream connection. It runs on the reader goroutine
	// like OnMessage, so that a loop gets one event per batch. The slice
	// is reused once OnMessages returns: keep a copy, not the slice.
	OnMessages func([]Incoming)
	// OnMessagesThen, when set, is called instead of OnMessages with the
	// batches read from UDP sockets (stream connections still go to
	// OnMessages). It may return work to run next on the same reader
	// goroutine, before it reads again: nil for none. When that work
	// lasts longer than UDPConfig.Relief, another goroutine takes over
	// reading the socket and this one ends when the work returns, so
	// slow work delays the socket's next datagrams by Relief to twice
	// that at most. Close does not wait for a reader that runs such work
	// (the work may itself call Close).
	OnMessagesThen func([]Incoming) Then
	// OnConn is called when a stream connection opens or closes, on that
	// connection's reader goroutine (so a connection's ConnOpen comes
	// before its messages and its ConnClosed after them). Nil: not
	// reported.
	OnConn func(ConnEvent)
	// OnUnreachable is called when the network reports that datagrams
	// sent on a UDP flow are not delivered: an ICMP port (or host)
	// unreachable for Flow.Remote, which Linux reports on the socket
	// (IP_RECVERR). err is a *net.OpError wrapping the errno, e.g.
	// syscall.ECONNREFUSED for a port nobody listens on. It runs on the
	// socket's reader goroutine. Nil: not reported. Other systems, and
	// sockets from Config.ListenPacket that are not *net.UDPConn, never
	// report.
	OnUnreachable func(f Flow, err error)
	// Logger receives debug and warning records. Nil: the package is
	// silent.
	Logger *slog.Logger
	// Tracer, when set, sees every SIP message sent and received, with
	// its raw bytes (see package trace): a message to send just before it
	// is written (and again as trace.SendFailed if the write fails), a
	// message received (malformed ones too) just before OnMessage. It is
	// called on the sending or reading goroutine, with no lock held; it
	// must be fast and safe for concurrent use. Keepalives are not traced.
	Tracer trace.Tracer

	// Limits bounds received messages (see message.Limits; its zero value
	// selects the message package's defaults, 64 KiB per message). A
	// stream connection that sends a message over the limits is closed.
	Limits message.Limits
	// MaxConns caps the inbound connections of all server sides together
	// (TCP, TLS, WS, WSS listeners and WebSocketHandler). A connection
	// over the cap is closed at once (WebSocket: refused with 503).
	// Default 1024; negative: no cap.
	MaxConns int
	// ReadTimeout is the longest time one message may take to arrive once
	// its first byte has been read (slowloris protection), and the limit
	// for a server-side TLS or WebSocket handshake. An inbound connection
	// must also deliver its first message or keepalive within ReadTimeout
	// of being accepted (of its handshake on TLS and WebSocket), so that
	// connections that send nothing cannot hold the MaxConns slots for
	// IdleTimeout. Default 10s; negative: none.
	ReadTimeout time.Duration
	// IdleTimeout closes a stream connection on which nothing at all
	// (not even a keepalive) has been received for this long. Default 5
	// minutes, well above Keepalive.Interval; negative: never.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a connection or socket, on top of
	// the caller's context. Default 10s; negative: none.
	WriteTimeout time.Duration
	// WriteQueue is how many messages may wait in a stream connection's
	// write queue (TrySendRequest, TrySendResponse); one more is refused
	// with ErrQueueFull instead of waiting. Default 1024. The writer
	// takes the waiting messages as one batch (on TCP and TLS written
	// with one write per 64 KiB), so up to twice this many
	// may be in the connection's hands at once (a batch being written and
	// a full queue behind it). The queue takes memory only while messages
	// wait.
	WriteQueue int
	// DialTimeout bounds opening an outbound connection including the TLS
	// and WebSocket handshakes, on top of the caller's context. Default
	// 10s; negative: none.
	DialTimeout time.Duration

	// DialContext opens the TCP connection under outbound TCP, TLS, WS
	// and WSS connections (network is "tcp"). Nil: a net.Dialer. Tests
	// use it to run on in-memory connections.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// ListenPacket opens every UDP socket: those of Listen (network
	// "udp") and those opened to send to a UDP target when no socket
	// fits (network "udp4" or "udp6", address "0.0.0.0:0",
	// "127.0.0.1:0" or "[::]:0"), including an Upstream's to a UDP
	// server. Nil: net.ListenConfig.ListenPacket. Tests use it to run on
	// an in-memory network (siptest.Network.PacketListener). The
	// UDPConfig buffer sizes apply to *net.UDPConn only. The conn's
	// LocalAddr should be a specific address: for a wildcard one, Via
	// and Contact hosts are found by asking the OS (a connected UDP
	// socket that sends nothing).
	ListenPacket func(ctx context.Context, network, address string) (net.PacketConn, error)
	// TLSConfig is the client configuration for outbound TLS and WSS. Nil
	// means the system roots with certificate verification on; pass a
	// config with RootCAs for a private CA. ServerName is filled in from
	// the target's host name when empty. Verification is skipped only if
	// the config says InsecureSkipVerify.
	TLSConfig *tls.Config
	// ServerTLSConfig is the configuration of TLS and WSS listeners; it
	// must have a certificate. Listen fails for TLS and WSS without it.
	ServerTLSConfig *tls.Config
	// DNS resolves host names and SRV records. Nil: the system's
	// resolver (as net.DefaultResolver), whose queries end as soon as
	// their context does (see newResolver).
	DNS DNS

	// Keepalive configures keepalives on outbound stream connections.
	Keepalive Keepalive
	// UDP configures UDP sockets.
	UDP UDPConfig
	// WebSocket configures the WebSocket server side.
	WebSocket WebSocketConfig
}

// Keepalive configures the pings a Transport sends on the stream
// connections it opened: RFC 5626 double-CRLF pings on TCP and TLS, and
// WebSocket ping frames on WS and WSS. The server side answers pings
// whatever this says (a single CRLF, a pong frame).
type Keepalive struct {
	// Interval is the time between pings. Default 30s; negative: no
	// keepalive and so no dead-peer detection.
	Interval time.Duration
	// Timeout is how long a pong may take. When it does not come, the
	// connection is closed with ErrDeadPeer. Default 10s.
	Timeout time.Duration
	// Ping, when set, replaces the CRLF and WebSocket pings, for example
	// with an OPTIONS request sent by the layer above: it is called every
	// Interval on the connection's keepalive goroutine with a context
	// that ends after Timeout (or when the connection closes), and an
	// error marks the peer dead. An Upstream to a UDP server uses it too.
	Ping func(ctx context.Context, f Flow) error
}

// UDPConfig configures UDP sockets.
type UDPConfig struct {
	// ReadBuffer is the socket receive buffer (SO_RCVBUF) in bytes.
	// Default 4 MiB, so bursts on a busy socket are not dropped. Linux
	// caps SO_RCVBUF at net.core.rmem_max; a process with CAP_NET_ADMIN
	// (root) gets the full size through SO_RCVBUFFORCE. Negative: the OS
	// default.
	ReadBuffer int
	// WriteBuffer is the socket send buffer (SO_SNDBUF) in bytes. Default
	// 1 MiB (capped like ReadBuffer, SO_SNDBUFFORCE for root); negative:
	// the OS default.
	WriteBuffer int
	// MaxRequestSize applies RFC 3261 §18.1.1: SendRequest sends a
	// request larger than this many bytes over TCP instead of UDP (and
	// falls back to UDP if the TCP connection is refused). Default 1300
	// (an MTU of 1500 minus 200), except with a Config.ListenPacket and
	// no DialContext, where TCP would leave the network UDP runs on: then
	// never; negative: never switch.
	MaxRequestSize int
	// BatchSize is the most datagrams a socket's reader takes in one
	// system call (recvmmsg on Linux), and the most responses a
	// Transport.Batch writes in one (sendmmsg). Default 32. A
	// reader starts with one slot of Limits.MaxMessageSize bytes and
	// grows to BatchSize slots only while reads fill every slot, so an
	// idle socket holds one buffer. 1 (or negative) reads and writes one
	// datagram per system call (ReadFrom, WriteTo), as do systems and
	// sockets (Config.ListenPacket other than *net.UDPConn) without
	// batch calls.
	BatchSize int
	// Relief is how long work left by Config.OnMessagesThen may keep a
	// socket's reader before another goroutine takes over reading (it is
	// checked every Relief, so it takes over after Relief to 2·Relief).
	// Default 2 ms.
	Relief time.Duration
}

// WebSocketConfig configures the WebSocket server side.
type WebSocketConfig struct {
	// CheckOrigin decides whether a handshake with this Origin header is
	// accepted. Nil accepts every origin: SIP over WebSocket serves
	// browsers on other sites, and authentication happens in SIP.
	CheckOrigin func(r *http.Request) bool
}

const (
	defaultMaxConns          = 1024
	defaultReadTimeout       = 10 * time.Second
	defaultIdleTimeout       = 5 * time.Minute
	defaultWriteTimeout      = 10 * time.Second
	defaultDialTimeout       = 10 * time.Second
	defaultWriteQueue        = 1024
	defaultKeepaliveInterval = 30 * time.Second
	defaultKeepaliveTimeout  = 10 * time.Second
	defaultUDPReadBuffer     = 4 << 20
	defaultUDPWriteBuffer    = 1 << 20
	defaultUDPMaxRequestSize = 1300
	defaultUDPBatchSize      = 32
	defaultUDPRelief         = 2 * time.Millisecond
)

func durDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func intDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// norm returns c with defaults filled in; 0 then means "none".
func (c Config) norm() Config {
	c.MaxConns = intDefault(c.MaxConns, defaultMaxConns)
	c.ReadTimeout = durDefault(c.ReadTimeout, defaultReadTimeout)
	c.IdleTimeout = durDefault(c.IdleTimeout, defaultIdleTimeout)
	c.WriteTimeout = durDefault(c.WriteTimeout, defaultWriteTimeout)
	c.DialTimeout = durDefault(c.DialTimeout, defaultDialTimeout)
	if c.WriteQueue <= 0 {
		c.WriteQueue = defaultWriteQueue
	}
	c.Keepalive.Interval = durDefault(c.Keepalive.Interval, defaultKeepaliveInterval)
	c.Keepalive.Timeout = durDefault(c.Keepalive.Timeout, defaultKeepaliveTimeout)
	c.UDP.ReadBuffer = intDefault(c.UDP.ReadBuffer, defaultUDPReadBuffer)
	c.UDP.WriteBuffer = intDefault(c.UDP.WriteBuffer, defaultUDPWriteBuffer)
	if c.UDP.MaxRequestSize == 0 && c.ListenPacket != nil && c.DialContext == nil {
		c.UDP.MaxRequestSize = -1 // UDP on the caller's network, TCP on the OS's
	}
	c.UDP.MaxRequestSize = intDefault(c.UDP.MaxRequestSize, defaultUDPMaxRequestSize)
	c.UDP.BatchSize = max(intDefault(c.UDP.BatchSize, defaultUDPBatchSize), 1)
	if c.UDP.Relief <= 0 {
		c.UDP.Relief = defaultUDPRelief
	}
	if c.Limits.MaxMessageSize == 0 {
		c.Limits.MaxMessageSize = message.DefaultMaxMessageSize
	}
	if c.DNS == nil {
		c.DNS = newResolver("")
	}
	if c.DialContext == nil {
		d := &net.Dialer{}
		c.DialContext = d.DialContext
	}
	if c.ListenPacket == nil {
		var lc net.ListenConfig
		c.ListenPacket = lc.ListenPacket
	}
	return c
}
