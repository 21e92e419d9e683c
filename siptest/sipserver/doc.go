// Package sipserver is a small SIP registrar and proxy for tests, labs and
// demos: one process starts it on loopback (UDP, TCP, WebSocket, or the
// in-memory network of package siptest), user agents register with it and
// call each other through it, and it records every message it sees as a
// readable ladder.
//
//	srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test"})
//	…
//	defer srv.Close()
//	if _, err := srv.Listen(ctx, "ws", "127.0.0.1:0"); err != nil { … }
//	// UAs use srv.WSURL() as their WebSocket server and
//	// sip:alice@sipua.test, sip:bob@sipua.test as their addresses.
//	…
//	fmt.Print(srv.Ladder())
//
// # Registrar
//
// REGISTER (RFC 3261 §10.3) for users of Options.Domain: Expires and the
// contact expires parameter, Contact "*" with Expires 0, 423 with
// Min-Expires below Options.MinExpires, the CSeq order per Call-ID, and a
// 200 listing the current bindings with their remaining expires. With
// Options.Users, REGISTER needs digest credentials (401). A binding keeps
// the flow its REGISTER came on, and requests for the user are sent on that
// flow (as RFC 5626 and RFC 7118 have it): a WebSocket client, whose
// contact host is ".invalid", cannot be reached any other way. Such
// bindings go when their connection closes; all bindings lapse when they
// expire. RFC 5626 registrations (+sip.instance and reg-id with Supported:
// outbound) are keyed by instance and reg-id and answered with Require:
// outbound.
//
// # Proxy
//
// A record-routing, transaction-stateful proxy (RFC 3261 §16) without
// forking:
//
//   - A request for a user of the domain goes to the user's most recent
//     binding: 404 for an unknown user, 480 for a known one without
//     bindings. With Options.ProxyAuth, out-of-dialog INVITE, MESSAGE,
//     SUBSCRIBE and REFER from local users are challenged (407).
//   - The proxy adds its Via (a new branch), decrements Max-Forwards (483
//     at 0), and record-routes requests that create dialogs with
//     "<sip:ip:port;transport=…;lr>", twice when the two sides use
//     different transports (RFC 5658), so in-dialog requests come back
//     through it. A Route naming the proxy is removed (loose routing) and
//     the request goes to the next Route or to its Request-URI; a
//     Request-URI that is a registered contact, ".invalid" ones included,
//     is sent on the binding's flow.
//   - Responses go back on the flow the request came from, without the
//     proxy's Via (over UDP per Via received and rport); 100 Trying is
//     hop by hop. Retransmitted requests are answered with the last
//     response; over UDP the proxy retransmits what it forwarded (Timers
//     A, E) and gives up after Timer B, F or C (an INVITE is then answered
//     408 and cancelled), and repeats a non-2xx final response to an
//     INVITE until its ACK comes (Timer G).
//   - CANCEL is answered 200 at once and sent to where the INVITE went, once
//     the INVITE has had a provisional response; the ACK of a non-2xx
//     response is generated hop by hop, the ACK of a 2xx is routed like
//     any in-dialog request.
//   - OPTIONS for the server itself is answered 200.
//
// Everything runs on one goroutine of the server's that owns all the
// state; the transport's readers hand messages to it. Close stops it and
// the transport.
//
// # Trace
//
// Every message received or sent is an Event (time, direction, flow, the
// peer's name and the message). Options.OnEvent sees them as they happen;
// Trace returns them, Flow renders the compact form meant for assertions
// ("alice→proxy INVITE", "proxy→bob INVITE") and Ladder a text ladder
// diagram with the server in the middle. Peers are named after the user
// that registered from their flow.
//
// # Why not in siptest
//
// The server is built on package transport, whose own tests use siptest's
// in-memory network: siptest itself cannot import transport without an
// import cycle in those tests, so the server lives in this subpackage.
// Package siptest and the root package sip never import it, so the tests of
// both can.
package sipserver
