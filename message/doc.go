// Package message parses and writes SIP messages (RFC 3261) and the URIs
// and header values a user agent works with.
//
// Parsing is lazy and cheap: Parse copies the input once, splits the start
// line and the header fields, frames the body by Content-Length, and stops.
// Header values are kept as strings that point into that one copy and are
// parsed only when read, through typed accessors on Header (TopVia, From,
// To, CSeq, Contacts, …). Unknown header fields are kept verbatim and in
// order; names compare case-insensitively and compact forms ("v", "f",
// "i" …) match their long forms.
//
// A received message should be checked with Validate before a UA acts on
// it. Every error is a *ParseError wrapping one of the sentinel errors
// (ErrMalformed, ErrVersion, ErrContentLength …), and StatusCode tells
// which response a UAS answers with (400, 413, 416, 505, 513 …).
//
// Writing appends to a caller's buffer (AppendTo), so a sender can reuse
// one buffer for every message. Content-Length is always written from the
// body's length.
//
// For stream transports (TCP, TLS) Limits.Frame and StreamReader split a
// byte stream into messages and RFC 5626 keepalives; over a datagram or a
// WebSocket message, one Parse call takes one message.
//
// Limits bounds message size, header count, line length and body size; its
// zero value selects documented defaults.
package message
