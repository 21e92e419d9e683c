package sip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// Rel100 says how an Inviter uses reliable provisional responses (RFC
// 3262, "100rel").
type Rel100 int

// Rel100 policies.
const (
	// Rel100Supported (the default) sends Supported: 100rel: the callee
	// may send reliable provisional responses, each acknowledged by PRACK.
	Rel100Supported Rel100 = iota
	// Rel100Required sends Require: 100rel: a callee that cannot send
	// reliable provisional responses rejects the call with 420.
	Rel100Required
	// Rel100Disabled sends neither: provisional responses are unreliable.
	Rel100Disabled
)

// maxReliableEarly bounds the early dialogs one INVITE's reliable
// provisional responses may create (forks), against a peer that makes up
// To tags.
const maxReliableEarly = 32

// inviteAllow is the Allow header of our INVITEs and their 2xx.
const inviteAllow = "ACK, BYE, CANCEL, INVITE, OPTIONS, PRACK, UPDATE"

// callExt holds a call's state for the extensions of RFC 3262 (PRACK),
// RFC 3311 (UPDATE) and RFC 4028 (session timers). Owned by the event
// loop.
type callExt struct {
	// UAC: the early dialogs reliable provisional responses created, by
	// remote tag, and the one of the latest.
	early     map[string]*earlyDialog
	lastEarly *earlyDialog
	// UAS: the early dialog of our reliable provisional responses, the
	// last RSeq sent and the unacknowledged reliable response.
	uasEarly *dialog.Dialog
	rseq     uint32
	rel      *relProv
	// peerAllow is the peer's last Allow header.
	peerAllow string
	claimKey  *callExt // key of our claim in ua.claims, when set
	timer     sessionTimer
}

// earlyDialog is an early dialog on the UAC side (RFC 3262 §4).
type earlyDialog struct {
	d        *dialog.Dialog
	lastRSeq uint32 // the RSeq of the last in-order reliable response
	haveRSeq bool
}

// relProv is a reliable provisional response waiting for its PRACK
// (RFC 3262 §3).
type relProv struct {
	resp     *message.Response
	rseq     uint32
	cseq     uint32
	sdp      bool // it carries an offer or an answer: no 2xx before its PRACK
	interval time.Duration
	giveUp   time.Time
	timer    *timerEntry
	acked    chan struct{} // closed on PRACK or when the call ends
}

// notePeerAllow records the peer's Allow header, if h has one.
func (x *callExt) notePeerAllow(h *message.Header) {
	if h.Has("Allow") {
		var all []string
		for v := range h.Values("Allow") {
			all = append(all, v)
		}
		x.peerAllow = strings.Join(all, ",")
	}
}

// peerAllows reports whether the peer listed method in its Allow.
func (x *callExt) peerAllows(method string) bool {
	for _, m := range strings.Split(x.peerAllow, ",") {
		if strings.EqualFold(strings.TrimSpace(m), method) {
			return true
		}
	}
	return false
}

// noteLocal records the session description we sent last.
func (s *Session) noteLocal(ct string, body []byte) {
	if len(body) == 0 {
		return
	}
	s.oa.lastLocal = media.Description{ContentType: ct, Body: body}
}

// ----- UAC -----

// extendInvite adds what our INVITE says about 100rel and session
// timers. Runs before the INVITE is sent.
func (i *Inviter) extendInvite(req *message.Request) error {
	var sup []string
	switch i.opts.Rel100 {
	case Rel100Supported:
		sup = append(sup, "100rel")
	case Rel100Required:
		req.Header.Add("Require", "100rel")
	case Rel100Disabled:
	default:
		return fmt.Errorf("%w: Rel100 %d", ErrBadOptions, i.opts.Rel100)
	}
	to := i.ua.opts.SessionTimers
	if i.opts.SessionTimers != nil {
		to = *i.opts.SessionTimers
	}
	if err := to.check(); err != nil {
		return err
	}
	to = to.norm()
	i.x.timer.opts = to
	if !to.Disabled {
		sup = append(sup, "timer")
		i.x.timer.minSE = to.MinSE
		setSessionExpires(&req.Header, to.Expires, to.Refresher, to.MinSE)
	}
	if len(sup) > 0 {
		req.Header.Add("Supported", strings.Join(sup, ", "))
	}
	i.noteLocal(req.Header.MediaType(), req.Body)
	return nil
}

// onReliable looks at a provisional response to our INVITE after the
// early dialog bookkeeping (onProvisional) and before the callbacks: a reliable one (RFC 3262 §4) is acknowledged with
// PRACK in its early dialog, and its offer or answer taken. It returns
// false for a response that must go no further: a retransmission or one
// out of RSeq order. Runs on the loop.
func (i *Inviter) onReliable(o *outgoing, resp *message.Response) bool {
	if resp.StatusCode == 100 || !resp.Header.HasToken("Require", "100rel") {
		return true
	}
	rseq, ok, err := resp.Header.RSeq()
	tag := resp.Header.ToTag()
	if !ok || err != nil || tag == "" {
		i.ua.log.Debug("sip: reliable provisional response without RSeq or To tag dropped")
		return false
	}
	x := &i.x
	e := x.early[tag]
	if e == nil {
		if len(x.early) >= maxReliableEarly {
			i.ua.log.Debug("sip: too many early dialogs; reliable provisional response dropped", "max", maxReliableEarly)
			return false
		}
		d, err := dialog.NewUAC(o.req, resp)
		if err != nil {
			i.ua.log.Debug("sip: reliable provisional response unusable", "err", err)
			return false
		}
		if x.early == nil {
			x.early = map[string]*earlyDialog{}
		}
		e = &earlyDialog{d: d}
		x.early[tag] = e
		i.claimEarly()
	}
	if e.haveRSeq && rseq != e.lastRSeq+1 {
		// A retransmission, or one that overtook another: discarded
		// (RFC 3262 §4); the UAS retransmits until its PRACK.
		return false
	}
	e.lastRSeq, e.haveRSeq = rseq, true
	if e.d.State == dialog.Early {
		e.d.RefreshTarget(resp)
	}
	x.lastEarly = e
	x.notePeerAllow(&resp.Header)
	cseq, _ := resp.Header.CSeq()
	prack, err := e.d.NewRequest("PRACK")
	if err != nil {
		return true
	}
	prack.Header.Add("RAck", message.RAck{RSeq: rseq, CSeq: cseq.Seq, Method: cseq.Method}.String())
	send := func() {
		po := &outgoing{req: prack, onResponse: func(*message.Response) {}}
		po.rebuild = nextCSeq(&e.d.LocalSeq)
		if err := i.ua.send(po); err != nil {
			i.ua.log.Debug("sip: PRACK not sent", "err", err)
		}
	}
	if len(resp.Body) == 0 || i.oa.initialDone || i.handler == nil {
		send()
		return true
	}
	i.oa.initialDone = true
	desc := media.Description{ContentType: resp.Header.MediaType(), Body: resp.Body}
	h, mo := i.handler, i.opts.Media
	if len(o.req.Body) > 0 {
		// The answer to our INVITE's offer: it stands for the call
		// (unless early media applied it already).
		if i.earlyApplied == nil {
			if fe := i.forks.lookup(tag); fe != nil {
				i.setEarlyMedia(fe, resp.Body)
			} else {
				i.earlyApplied = resp.Body
			}
			i.applyRemote(desc, mo, "answer in reliable provisional response")
		}
		send()
		return true
	}
	// An offer (our INVITE had none): the answer goes in the PRACK.
	i.cbq.push(func() {
		ctx, cancel := i.mediaContext()
		defer cancel()
		var ans media.Description
		err := h.SetDescription(ctx, desc, mo)
		if err == nil {
			ans, err = h.GetDescription(ctx, mo)
		}
		i.ua.post(func() {
			if err != nil {
				i.ua.log.Debug("sip: offer in reliable provisional response refused", "err", err)
			} else {
				prack.Header.Add("Content-Type", ans.ContentType)
				prack.Body = ans.Body
				i.noteLocal(ans.ContentType, ans.Body)
			}
			send()
		})
	})
	return true
}

// claimEarly takes the requests the callee sends in our early dialogs
// (UPDATE). Runs on the loop.
func (i *Inviter) claimEarly() {
	x := &i.x
	if x.claimKey != nil {
		return
	}
	x.claimKey = x
	callID, local := i.invite.Header.CallID(), i.invite.Header.FromTag()
	i.ua.claims[x] = func(tx *transaction.Server, req *message.Request) bool {
		if req.Header.CallID() != callID || req.Header.ToTag() != local || i.ended {
			return false
		}
		e := x.early[req.Header.FromTag()]
		if e == nil || i.d != nil {
			return false
		}
		return i.Session.earlyRequest(tx, req, e.d)
	}
}

// on2xx takes what the 2xx to our INVITE says about session timers and
// the peer's methods. Runs on the loop.
func (i *Inviter) on2xx(resp *message.Response) {
	if i.d != nil {
		return
	}
	i.x.notePeerAllow(&resp.Header)
	if !i.x.timer.opts.Disabled {
		i.x.timer.fromResponse(resp)
	}
}

// ----- UAS -----

// relPrepare is the first half of a reliable Progress (off the loop): it
// waits until an earlier reliable provisional response is acknowledged
// (RFC 3262 §3) and, when the INVITE had no offer, gets the offer the
// first reliable provisional response must carry. reliable is false when
// the response goes unreliably.
func (inv *Invitation) relPrepare(ctx context.Context, opts ProgressOptions) (reliable bool, offer *media.Description, err error) {
	h := &inv.Request.Header
	required := h.HasToken("Require", "100rel")
	if !opts.Reliable && !required {
		return false, nil, nil
	}
	if !required && !h.HasToken("Supported", "100rel") {
		return false, nil, fmt.Errorf("%w: the caller does not support 100rel", ErrBadOptions)
	}
	if err := inv.waitReliable(ctx, false); err != nil {
		return false, nil, err
	}
	var first bool
	if err := inv.ua.call(ctx, func() { first = inv.x.rseq == 0 }); err != nil {
		return false, nil, err
	}
	if first && len(inv.Request.Body) == 0 && inv.handler != nil {
		d, err := inv.handler.GetDescription(ctx, opts.Media)
		if err != nil {
			return false, nil, fmt.Errorf("sip: offer: %w", err)
		}
		offer = &d
	}
	return true, offer, nil
}

// waitReliable waits until no reliable provisional response waits for
// its PRACK (sdpOnly: none carrying an offer or answer).
func (s *Session) waitReliable(ctx context.Context, sdpOnly bool) error {
	for {
		var ch chan struct{}
		if err := s.ua.call(ctx, func() {
			if r := s.x.rel; r != nil && (!sdpOnly || r.sdp) {
				ch = r.acked
			}
		}); err != nil {
			return err
		}
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-s.doneChan():
			return fmt.Errorf("%w: the call ended", ErrInvalidState)
		case <-ctx.Done():
			return canceled(ctx)
		case <-s.ua.quit:
			return ErrStopped
		}
	}
}

// sendReliable sends resp, a provisional response, reliably: RSeq,
// Require: 100rel, the early dialog, retransmissions until PRACK. Runs
// on the loop.
func (inv *Invitation) sendReliable(resp *message.Response, offer *media.Description) error {
	x := &inv.x
	if x.rel != nil {
		return fmt.Errorf("%w: a reliable provisional response waits for its PRACK", ErrInvalidState)
	}
	x.notePeerAllow(&inv.Request.Header)
	if x.rseq == 0 {
		x.rseq = 1 + rand.Uint32N(1<<31-1)
	} else {
		x.rseq++
	}
	if offer != nil && len(resp.Body) == 0 {
		resp.Header.Add("Content-Type", offer.ContentType)
		resp.Body = offer.Body
		inv.oa.begin(oaReliableOut)
		inv.noteLocal(offer.ContentType, offer.Body)
	} else if len(resp.Body) > 0 {
		// The answer to the INVITE's offer: the exchange is complete.
		inv.oa.initialDone = true
		inv.noteLocal(resp.Header.MediaType(), resp.Body)
	}
	resp.Header.Add("Require", "100rel")
	resp.Header.Add("RSeq", fmt.Sprint(x.rseq))
	if !resp.Header.Has("Record-Route") {
		// The response creates the early dialog its PRACK goes in: the
		// route set goes back to the caller (RFC 3261 §12.1.1).
		for _, f := range inv.Request.Header.Fields() {
			if message.CanonicalName(f.Name) == "Record-Route" {
				resp.Header.Add("Record-Route", f.Value)
			}
		}
	}
	resp.Header.Add("Allow", inviteAllow)
	if x.uasEarly == nil {
		d, err := dialog.NewUAS(inv.Request, resp)
		if err != nil {
			return fmt.Errorf("sip: early dialog: %w", err)
		}
		x.uasEarly = d
		inv.claimUAS()
	}
	cseq, _ := inv.Request.Header.CSeq()
	t := Timers(inv.ua.opts.Timers)
	t1 := t.T1
	if t1 <= 0 {
		t1 = 500 * time.Millisecond
	}
	r := &relProv{resp: resp, rseq: x.rseq, cseq: cseq.Seq, sdp: len(resp.Body) > 0,
		interval: t1, giveUp: time.Now().Add(64 * t1), acked: make(chan struct{})}
	if err := inv.ua.respond(inv.ist, resp); err != nil {
		return err
	}
	x.rel = r
	inv.armRel(r)
	return nil
}

// armRel schedules the next retransmission of r (T1, doubling) or, after
// 64*T1, gives up: the INVITE is answered 504 (RFC 3262 §3).
func (inv *Invitation) armRel(r *relProv) {
	at := time.Now().Add(r.interval)
	if at.After(r.giveUp) {
		at = r.giveUp
	}
	r.timer = inv.ua.afterAt(at, func() {
		if inv.x.rel != r || inv.ended {
			return
		}
		if !time.Now().Before(r.giveUp) {
			inv.relDone()
			if !inv.answered {
				inv.answered = true
				inv.ua.reply(inv.ist, 504, "No PRACK", func(resp *message.Response) { inv.tagged(resp) })
				delete(inv.ua.invitations, inv.ist)
			}
			inv.terminate(EndReason{Cause: EndNoPrack, StatusCode: 504})
			return
		}
		if err := inv.ua.respond(inv.ist, r.resp); err != nil {
			inv.relDone() // a final response went out: nothing to repeat
			return
		}
		r.interval *= 2
		inv.armRel(r)
	})
}

// relDone stops waiting for the PRACK of the current reliable response.
func (s *Session) relDone() {
	if r := s.x.rel; r != nil {
		s.ua.timers.stop(r.timer)
		close(r.acked)
		s.x.rel = nil
	}
}

// claimUAS takes the requests the caller sends in our early dialog
// (PRACK, UPDATE). Runs on the loop.
func (inv *Invitation) claimUAS() {
	x := &inv.x
	if x.claimKey != nil {
		return
	}
	x.claimKey = x
	id := x.uasEarly.ID
	inv.ua.claims[x] = func(tx *transaction.Server, req *message.Request) bool {
		if dialog.RequestID(req) != id || inv.ended || inv.d != nil {
			return false
		}
		return inv.Session.earlyRequest(tx, req, x.uasEarly)
	}
}

// earlyRequest handles a request in an early dialog. Runs on the loop.
func (s *Session) earlyRequest(tx *transaction.Server, req *message.Request, d *dialog.Dialog) bool {
	switch req.Method {
	case "PRACK", "UPDATE":
	default:
		return false
	}
	if err := d.ReceiveRequest(req); err != nil {
		s.ua.reply(tx, 500, "CSeq Out of Order", nil)
		return true
	}
	if req.Method == "PRACK" {
		s.onPrack(tx, req)
	} else {
		s.onUpdate(tx, req, d)
	}
	return true
}

// onPrack answers a PRACK (RFC 3262 §3): 200 when it acknowledges our
// unacknowledged reliable provisional response, 481 otherwise. Runs on
// the loop.
func (s *Session) onPrack(tx *transaction.Server, req *message.Request) {
	ra, err := req.Header.RAck()
	r := s.x.rel
	if err != nil || r == nil || ra.RSeq != r.rseq || ra.CSeq != r.cseq || !strings.EqualFold(ra.Method, "INVITE") {
		s.ua.reply(tx, 481, "", nil)
		return
	}
	if len(req.Body) > 0 && s.oa.cur == oaReliableOut && s.handler != nil {
		// The answer to the offer of our reliable response.
		s.oa.end(oaReliableOut)
		s.oa.initialDone = true
		d := media.Description{ContentType: req.Header.MediaType(), Body: req.Body}
		mo := s.mopts
		s.applyRemote(d, mo, "answer in PRACK")
	}
	s.ua.reply(tx, 200, "", nil)
	s.relDone()
}

// relBeforeAccept waits for the PRACK of a reliable provisional response
// carrying an offer or answer (no 2xx before it, RFC 3262 §3) and reports
// whether the offer/answer exchange is already complete (the 2xx then
// carries no SDP).
func (inv *Invitation) relBeforeAccept(ctx context.Context) (noSDP bool, err error) {
	if err := inv.waitReliable(ctx, true); err != nil {
		return false, err
	}
	if err := inv.ua.call(ctx, func() { noSDP = inv.oa.initialDone || inv.oa.cur == oaReliableOut }); err != nil {
		return false, err
	}
	return noSDP, nil
}

// accept2xx completes our 2xx to the INVITE: session timer headers, no
// repeated SDP after a reliable exchange; the reliable provisional
// response, if any, is no longer repeated. Runs on the loop.
func (inv *Invitation) accept2xx(resp *message.Response, opts AcceptOptions) {
	x := &inv.x
	if inv.oa.initialDone || inv.oa.cur == oaReliableOut {
		resp.Header.Del("Content-Type")
		resp.Body = nil
	}
	inv.noteLocal(resp.Header.MediaType(), resp.Body)
	x.notePeerAllow(&inv.Request.Header)
	if opts.SessionTimers != nil {
		x.timer.opts = opts.SessionTimers.norm()
	} else {
		x.timer.opts = inv.ua.opts.SessionTimers.norm()
	}
	x.timer.answer(inv.Request, resp)
	if r := x.rel; r != nil {
		inv.ua.timers.stop(r.timer) // a PRACK may still come; no more repeats
	}
}

// afterConfirm runs when the session takes its confirmed dialog: the
// sequence numbers used in the early dialog carry over, the session timer
// starts. Runs on the loop.
func (s *Session) afterConfirm(d *dialog.Dialog) {
	x := &s.x
	var e *dialog.Dialog
	if x.uasEarly != nil && x.uasEarly.ID == d.ID {
		e = x.uasEarly
	} else if ed := x.early[d.ID.RemoteTag]; ed != nil {
		e = ed.d
	}
	if e != nil && e != d {
		if e.LocalSeq > d.LocalSeq {
			d.LocalSeq = e.LocalSeq
		}
		if e.RemoteSeqSet && (!d.RemoteSeqSet || e.RemoteSeq > d.RemoteSeq) {
			d.RemoteSeq, d.RemoteSeqSet = e.RemoteSeq, true
		}
	}
	s.timerStart()
}

// extStop ends what the extensions keep running for a call. Runs on the
// loop.
func (s *Session) extStop() {
	s.relDone()
	s.timerStop()
	if s.x.claimKey != nil {
		delete(s.ua.claims, s.x.claimKey)
		s.x.claimKey = nil
	}
}
