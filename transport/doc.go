// Package transport moves SIP messages over UDP, TCP, TLS, WebSocket (WS)
// and secure WebSocket (WSS, RFC 7118). It owns sockets, connections,
// framing, keepalives and reconnection, and knows nothing about
// transactions or dialogs: like net/http's Transport next to the protocol
// logic above it, it only delivers and sends whole messages.
//
// A Transport is created with New and a Config whose zero value works. It
// listens with Listen (or serves WebSocket through WebSocketHandler inside
// an existing http.Server), sends with Send, SendRequest and SendResponse,
// and reports what it receives and what happens to its connections through
// the Config callbacks OnMessage and OnConn. Callbacks run on the
// transport's reader goroutines, never while the transport holds a lock;
// they should hand their work to the caller's own event loop and return.
//
// Every connection-oriented link and every UDP peer is a Flow (RFC 5626):
// a received message carries the Flow it came on, and a response to it is
// sent back on that Flow (SendResponse), which for a stream means the same
// connection and for UDP the source address, i.e. Via received and rport
// (RFC 3581, RFC 3261 §18.2.2).
//
// Send, SendRequest and SendResponse wait until the message is written
// (dialling a connection first if need be). A caller with an event loop
// that must never wait on the network uses TrySendRequest and
// TrySendResponse instead: they put the message in the write queue of an
// open connection (Config.WriteQueue deep, drained by a writer goroutine
// per connection, which lives as long as the connection) or hand a
// datagram to a UDP socket, and return at once. A full queue is refused
// with ErrQueueFull and a write that fails later is reported through
// SendOptions.OnFail; when a connection must be dialled or a name looked
// up first, they return a *PendingError, and the caller runs Dial or
// Resolve (ResolveNow answers numeric URIs at once) on a goroutine of its
// own and tries again when it returns.
//
// UDP is read and written in batches where the system has the calls for
// it (recvmmsg and sendmmsg on Linux, through golang.org/x/net): a
// socket's reader takes up to UDPConfig.BatchSize datagrams per system
// call and hands their messages to Config.OnMessages in one call, so that
// a loop gets one event per batch; the responses that TrySendResponse
// hands over while a Transport.Batch runs leave together when it ends. Elsewhere, and with BatchSize 1, every datagram takes one
// ReadFrom or WriteTo. Stats counts the system calls and datagrams.
//
// Resolve turns a SIP or SIPS URI into an ordered list of Targets as a UA
// does under RFC 3263: numeric addresses, host:port, SRV records when no
// port is given, and A/AAAA records, with the transport taken from the
// URI's transport parameter or the sips scheme.
//
// Outbound stream connections can be watched with keepalives: RFC 5626
// CRLF ping/pong on TCP and TLS, WebSocket ping/pong on WS and WSS, or a
// caller-supplied ping (e.g. an OPTIONS request). A pong that does not
// arrive in time closes the connection with ErrDeadPeer and reports it.
//
// Transport.Connect starts an Upstream, which keeps one connection to a
// configured server up (a UA's outbound proxy or WebSocket server): it fails over
// across a list of servers ordered by priority and weight, reconnects with
// exponential back-off and jitter, and reports each state change
// (connecting, connected, disconnected with the error), which is what a
// UserAgent's onConnect/onDisconnect are built on.
//
// The package never logs unless Config.Logger is set, starts no goroutine
// before it is asked to listen, send or connect, and leaves none behind
// after Close, which waits for callbacks in progress to return.
package transport
