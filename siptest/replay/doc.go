// Package replay records SIP exchanges as text traces and plays them back
// against a user agent under test: the recorded-trace part of sipua's test
// kit.
//
// A Trace is what two parties, A and B, sent each other, message by
// message. By convention B is the user agent under test and A the peer it
// talked to: a registrar, a proxy and whoever was behind it. The traces in
// the repository's testdata/traces were recorded with sipua's UserAgent as
// B and a real Kamailio (relaying SIP.js, JsSIP or sipp) as A.
//
//   - Recorder captures the datagrams a user agent sends and receives, by
//     wrapping its UDP sockets (sip.TransportOptions.ListenPacket), and
//     returns them as a Trace.
//   - WriteTrace and ReadTrace store a Trace in a text file that keeps
//     every byte of every message.
//   - Play plays side A of a trace to a user agent over a net.PacketConn
//     (a siptest.Network's, on virtual time, or a UDP socket), and checks
//     each message the user agent sends against side B's, learning the
//     values that legitimately differ from run to run.
//
// # The trace file format
//
// A trace file is UTF-8 text with the messages' own bytes inside it. It
// starts with the line "SIPTRACE/1", then header lines "Name: value" up
// to the first empty line:
//
//	SIPTRACE/1
//	Title: REGISTER with digest authentication against Kamailio
//	A: kamailio 127.0.0.1:23667 Kamailio 5.6.3, the registrar
//	B: sipua 127.0.0.1:51809 the user agent under test
//	Recorded: 2026-11-25 by interop/record_test.go
//	# any comment
//
// "A:" and "B:" describe the parties: a name without spaces, the address
// the party used when the trace was recorded ("-" when unknown), and free
// text. Title is one line of text. Any other name is kept in
// Trace.Fields, in order; lines starting with "#" are comments
// (Trace.Comments).
//
// Then come the messages, each introduced by a marker line:
//
//	--- 0.162121s A->B
//	SIP/2.0 401 Unauthorized␍␊
//	Via: SIP/2.0/UDP 127.0.0.1:51809;branch=z9hG4bK…;rport=51809;received=127.0.0.1␍␊
//	…
//	Content-Length: 0␍␊
//	␍␊
//	(LF)
//
// The marker gives the time the message was sent, in seconds from the
// start of the recording (microseconds kept), and its direction, "A->B"
// or "B->A". The message follows byte for byte, CRLF line ends included;
// it ends where its header section (up to the empty line) and then
// Content-Length bytes of body end, so a body may hold any text, even a
// line starting with "---". One line feed follows the message. A message
// that its Content-Length does not frame exactly (a keep-alive, a message
// without Content-Length, a truncated one) gets an explicit byte count,
// "--- 0.5s B->A len=4", and then exactly that many bytes. Empty lines
// between messages are ignored, and "#" lines just before a marker are a
// note about that message (Message.Note).
//
// Edit a trace with care: keep the CRLFs (the repository's
// .gitattributes marks traces as -text so that git keeps them), and fix
// Content-Length when you change a body. ReadTrace reports a wrong
// Content-Length as text where a marker line should be.
//
// # What Play checks and what it maps
//
// Play sends side A's messages in order and waits, before each, for side
// B's messages that precede it (in any order within such a run). It does
// not follow the recorded times. Each message from B is compared with the
// recorded one after that has been rewritten with this run's values:
//
//   - the method and Request-URI, or the status code;
//   - the same header fields present (Options.IgnoreHeaders aside);
//   - the number of Via values, the CSeq method, whether From and To carry
//     a tag;
//   - the values of DefaultCompared (Via, From, To, Call-ID, CSeq,
//     Contact, Route, Record-Route, Max-Forwards, Expires, Content-Type …);
//   - Authorization and Proxy-Authorization: the same parameters, a fresh
//     cnonce and a response of the right length, and the right digest
//     when Options.Passwords knows the user;
//   - a body when there was one, and the media lines of an SDP body.
//
// The values B chooses afresh each run are learnt from the first message
// that carries them, recorded → live, and must then stay consistent: the
// Call-ID, From and To tags, Via branches and sent-by, Contact users and
// addresses, the addresses of both sides, and the CSeq numbers of B's
// requests (the distance between them must be as recorded). They are
// written into A's messages before they are sent, together with the
// received and rport parameters A put on B's Via, so that the user agent
// sees its own values echoed. Values A chose (its tags, branches,
// Call-IDs, nonces) are sent as recorded, and B must echo them unchanged.
// Bodies are sent as recorded.
//
// Retransmissions are tolerated both ways: a message of the trace equal to
// an earlier one from the same side is not played, and a datagram from B
// that repeats one it already sent (the same start line, transaction and
// tags) is ignored and counted.
//
// # Recording your own traces
//
// Run your user agent over UDP against the peer you want to capture with
// a Recorder's ListenPacket, exercise it, take Recorder.Trace, fill in
// Title and the parties' names, and WriteTrace it into your testdata. In
// the test, give your user agent the same configuration (user, password,
// media) with the harness's address as its server, start what it did
// when recording (register, call, hang up) and Play the trace. When your
// user agent changes on purpose, record the trace again.
//
// The Recorder sees datagrams only: a user agent that talks TCP, TLS or
// WebSocket to its peer is not recorded, and Play speaks UDP-style
// datagrams only. A trace has two parties; the Recorder keeps the
// datagrams exchanged with one remote address.
package replay
