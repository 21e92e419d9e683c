// Package transaction implements the SIP transaction layer of RFC 3261 §17,
// with the RFC 6026 Accepted states, as pure state machines.
//
// Each machine (Client for INVITE and non-INVITE client transactions,
// Server for INVITE and non-INVITE server transactions) takes one input at
// a time — a message, the expiry of its timers, a transport error — with
// the current time, and appends the actions that follow (send a message,
// pass a message up to the transaction user, report a timeout or a
// transport failure, terminate) to a caller's slice. A machine owns no
// goroutine and no timer: it reports its next deadline and expects Tick
// when that time has come. That makes every timer path testable on a fake
// clock, and a transaction costs a few hundred bytes and no goroutine.
//
// Layer holds the transactions of one user agent: it matches incoming
// messages to transactions (§17.1.3, §17.2.3, with the RFC 2543 fallback for
// requests without a magic-cookie branch), creates server transactions for
// new requests, keeps one heap of deadlines, and carries out the actions
// through callbacks. A Layer is driven by a single goroutine (the user
// agent's event loop) and takes no locks.
package transaction
