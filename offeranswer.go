package sip

import "github.com/sipua/sip/media"

// oaExchange names the offer/answer exchange of a call that is under way
// (RFC 3264 §4, RFC 6337 §3): one at a time, whichever request or
// response carries it.
type oaExchange uint8

const (
	// oaNone: no exchange is under way (beyond the initial INVITE's,
	// which offerAnswer.initialDone follows).
	oaNone oaExchange = iota
	// oaReinviteOut: our re-INVITE (with an offer, or a session refresh)
	// awaits its final response.
	oaReinviteOut
	// oaReinviteIn: the peer's re-INVITE awaits our answer.
	oaReinviteIn
	// oaUpdateOut: the offer of our UPDATE awaits its answer.
	oaUpdateOut
	// oaUpdateIn: we are answering the offer of the peer's UPDATE.
	oaUpdateIn
	// oaReliableOut: (UAS) our offer went in a reliable provisional
	// response; its answer comes in the PRACK (RFC 3262 §5).
	oaReliableOut
)

// offerAnswer is a call's offer/answer state. Owned by the event loop.
type offerAnswer struct {
	// cur is the exchange under way.
	cur oaExchange
	// initialDone: the initial exchange completed in a reliable
	// provisional response and its PRACK; the 2xx carries no SDP.
	initialDone bool
	// lastLocal is the session description we sent last (refreshes by
	// re-INVITE repeat it); no Body: none yet. A value, not a pointer:
	// one allocation less per call.
	lastLocal media.Description
}

// busy reports whether an exchange is under way.
func (o *offerAnswer) busy() bool { return o.cur != oaNone }

// begin starts exchange e; the caller has checked that none is under way.
func (o *offerAnswer) begin(e oaExchange) { o.cur = e }

// end ends exchange e, if it is the one under way.
func (o *offerAnswer) end(e oaExchange) {
	if o.cur == e {
		o.cur = oaNone
	}
}

// set begins (on) or ends e.
func (o *offerAnswer) set(e oaExchange, on bool) {
	if on {
		o.begin(e)
	} else {
		o.end(e)
	}
}

// pending reports whether an offer of ours waits for its answer, or one
// of the peer's for ours (RFC 3311 §5.2), leaving the initial INVITE's
// aside.
func (o *offerAnswer) pending() (ours, theirs bool) {
	switch o.cur {
	case oaReinviteOut, oaUpdateOut, oaReliableOut:
		ours = true
	case oaReinviteIn, oaUpdateIn:
		theirs = true
	}
	return ours, theirs
}
