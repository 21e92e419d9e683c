package sip

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// outgoing is a request the core sent and follows to its end, answering
// authentication challenges on the way.
type outgoing struct {
	req        *message.Request
	onResponse func(*message.Response) // every response, after authentication
	onError    func(error)             // timeout, transport failure, refused credentials
	// rebuild returns the request to send again after a challenge:
	// nil selects a clone with the next CSeq and a new branch.
	rebuild func(*message.Request) *message.Request
	ended   bool
	tx      *transaction.Client // the current client transaction
	ua      *UserAgent          // the account that sent it (set by send)
}

func (o *outgoing) fail(err error) {
	if o.ended {
		return
	}
	o.ended = true
	if o.onError != nil {
		o.onError(err)
	}
}

// prepare adds what every request the UserAgent sends needs: a top Via
// with a new branch (the transport fills in its sent-by), Max-Forwards
// and User-Agent.
func (ua *UserAgent) prepare(req *message.Request) {
	req.Header.Del("Via")
	req.Header.PrependVia(message.Via{Transport: "UDP", Host: "sipua.invalid", Params: message.Params("branch=" + message.NewBranch() + ";rport")})
	if !req.Header.Has("Max-Forwards") {
		req.Header.Add("Max-Forwards", "70")
	}
	if ua.opts.UserAgentString != "-" && !req.Header.Has("User-Agent") {
		req.Header.Add("User-Agent", ua.opts.UserAgentString)
	}
}

// send starts a client transaction for o.req. Runs on the loop.
func (ua *UserAgent) send(o *outgoing) error {
	ua.prepare(o.req)
	ua.preauthorize(o)
	rt, reliable, err := ua.routeFor(o.req)
	if err != nil {
		return err
	}
	tx, err := ua.layer.Request(o.req, rt, reliable, time.Now())
	if err != nil {
		if errors.Is(err, transaction.ErrTransport) {
			return fmt.Errorf("%w: %w", ErrTransportClosed, err)
		}
		return err
	}
	ua.outgoing[tx] = o
	o.tx = tx
	o.ua = ua
	return nil
}

// txOf returns the current client transaction of o.
func (ua *UserAgent) txOf(o *outgoing) *transaction.Client { return o.tx }

// ackVia returns a Via for an ACK to a 2xx, a transaction of its own.
func (ua *UserAgent) ackVia() message.Via {
	return message.Via{Transport: "UDP", Host: "sipua.invalid", Params: message.Params("branch=" + message.NewBranch() + ";rport")}
}

// byeDialog ends a dialog nobody wants (a forked or late 2xx) with BYE.
// Runs on the loop.
func (ua *UserAgent) byeDialog(d *dialog.Dialog) {
	bye, err := d.NewRequest("BYE")
	ua.dialogs.Remove(d.ID)
	if err != nil {
		return
	}
	// Nobody waits for this BYE (a second 2xx of a fork, or one that
	// crossed our CANCEL): a failure to send it is only logged.
	if err := ua.send(&outgoing{req: bye, onResponse: func(*message.Response) {}}); err != nil {
		ua.log.Debug("sip: BYE of an unwanted dialog not sent", "err", err, "call-id", d.ID.CallID)
	}
}

// request sends req and waits for its final response. A non-2xx final
// response is returned as a *ResponseError along with the response.
func (ua *UserAgent) request(ctx context.Context, req *message.Request, onProvisional func(*message.Response)) (*message.Response, error) {
	type result struct {
		resp *message.Response
		err  error
	}
	ch := make(chan result, 1)
	o := &outgoing{req: req}
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 {
			if onProvisional != nil {
				ua.cbq.push(func() { onProvisional(resp) })
			}
			return
		}
		if o.ended {
			return
		}
		o.ended = true
		if resp.StatusCode >= 300 {
			ch <- result{resp, responseError(resp)}
			return
		}
		ch <- result{resp, nil}
	}
	o.onError = func(err error) { ch <- result{nil, err} }
	var sendErr error
	if err := ua.call(ctx, func() { sendErr = ua.send(o) }); err != nil {
		return nil, err
	}
	if sendErr != nil {
		return nil, sendErr
	}
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, canceled(ctx)
	case <-ua.quit:
		return nil, ErrStopped
	}
}

// onResponse receives the responses of client transactions.
func (ua *UserAgent) onResponse(tx *transaction.Client, resp *message.Response) {
	o := ua.outgoing[tx]
	if o == nil || o.ended {
		return
	}
	if (resp.StatusCode == 401 || resp.StatusCode == 407) && ua.auth != nil {
		next := o.req.Clone()
		if o.rebuild != nil {
			next = o.rebuild(o.req)
		} else {
			bumpCSeq(next)
		}
		if err := ua.auth.Authorize(next, resp); err != nil {
			if errors.Is(err, errAuthRefused) {
				o.fail(fmt.Errorf("%w: %w", ErrAuthFailed, responseError(resp)))
			} else {
				// No usable challenge: the response stands as it is.
				o.onResponse(resp)
			}
			return
		}
		o.req = next
		if err := ua.send(o); err != nil {
			o.fail(err)
		}
		return
	}
	o.onResponse(resp)
}

func bumpCSeq(req *message.Request) {
	c, _ := req.Header.CSeq()
	c.Seq++
	req.Header.Set("CSeq", c.String())
}

// usage is what uses a dialog (RFC 5057): a subscription, a call. The core
// hands it the in-dialog requests it receives, after the dialog checked
// their CSeq.
type usage interface {
	onRequest(tx *transaction.Server, req *message.Request, d *dialog.Dialog)
	// account is the UserAgent the usage belongs to.
	account() *UserAgent
}

// mergeKey identifies a request for loop detection (RFC 3261 §8.2.2.2):
// a 128-bit keyed digest of its From tag, Call-ID and CSeq, and the
// account it went to (by its Contact name, unique in a core). The merged
// map keeps a key as long as the transaction lingers (up to 64·T1 after
// its final response, so 32 s of calls at the rate a server takes them),
// and the transaction holds its own key (Server.TUKey, or the Layer's
// record of it once retired) for the removal; the map holds no pointer to
// the transaction, which the Layer lets go when it retires it. A
// digest is 16 bytes with no pointer for the collector to follow, where
// the strings took an allocation of their own and a map slot four times
// the size. Two different requests share a digest with probability
// 2^-128; the seeds are random per core, so a peer cannot make them
// collide on purpose. The zero key is no request's.
type mergeKey = [2]uint64

// mergeFields are what a mergeKey digests.
type mergeFields struct {
	fromTag, callID string
	cseq            uint32
	method          string
	account         string
}

// mergeKeyOf returns the mergeKey of req sent to account.
func (c *core) mergeKeyOf(req *message.Request, account *UserAgent) mergeKey {
	cs, _ := req.Header.CSeq()
	f := mergeFields{fromTag: req.Header.FromTag(), callID: req.Header.CallID(), cseq: cs.Seq, method: cs.Method, account: account.contactName}
	return mergeKey{maphash.Comparable(c.mergeSeeds[0], f), maphash.Comparable(c.mergeSeeds[1], f)}
}

// supported lists the extensions the UserAgent supports (Require check).
var supportedExtensions = []string{"outbound", "path", "100rel", "timer"}

func supported(ext string) bool {
	for _, s := range supportedExtensions {
		if strings.EqualFold(s, ext) {
			return true
		}
	}
	return false
}

// methods RFC 3261 and its extensions define: unsupported ones get 405,
// others 501.
func knownMethod(m string) bool {
	switch m {
	case "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
		"PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE":
		return true
	}
	return false
}

// allow returns the methods the UserAgent accepts, for Allow.
func (ua *UserAgent) allow() string {
	m := []string{"ACK", "CANCEL", "OPTIONS"}
	if ua.opts.Delegate.OnInvite != nil {
		m = append(m, "INVITE", "BYE", "PRACK", "UPDATE")
	}
	if ua.opts.Delegate.OnMessage != nil {
		m = append(m, "MESSAGE")
	}
	if ua.opts.Delegate.OnRefer != nil {
		m = append(m, "REFER")
	}
	if ua.opts.Delegate.OnSubscribe != nil {
		m = append(m, "SUBSCRIBE")
	}
	if ua.hasSubscribers() {
		m = append(m, "NOTIFY")
	}
	return strings.Join(m, ", ")
}

// respond sends a response in server transaction tx.
func (ua *UserAgent) respond(tx *transaction.Server, resp *message.Response) error {
	return ua.layer.Respond(tx, resp, time.Now())
}

func (ua *UserAgent) reply(tx *transaction.Server, code int, reason string, edit func(*message.Response)) {
	req := tx.Request()
	if req == nil {
		// The transaction has sent its final response already.
		ua.log.Debug("sip: response to a request already answered", "method", tx.Method(), "code", code)
		return
	}
	resp := ua.newResponse(req, code, reason)
	if edit != nil {
		edit(resp)
	}
	if err := ua.respond(tx, resp); err != nil {
		ua.log.Debug("sip: response not sent", "code", code, "err", err)
	}
}

// onRequest is the UAS core (RFC 3261 §8.2): it applies the checks every
// request goes through, then dispatches by method.
func (ua *UserAgent) onRequest(tx *transaction.Server, req *message.Request, src any) {
	if req.Method == "ACK" {
		// An ACK to a 2xx belongs to the call of its dialog.
		if d := ua.dialogs.Get(dialog.RequestID(req)); d != nil {
			if s, ok := ua.usages[d.ID].(*Session); ok {
				s.onAck(req)
			}
		}
		return
	}
	if tx == nil {
		return
	}
	// §8.2.2.1: the Request-URI scheme.
	if !req.URI.IsSIP() && req.URI.Scheme != "tel" {
		ua.reply(tx, 416, "", nil)
		return
	}
	// §8.2.2.2: merged requests (a fork coming back by another path).
	if req.Header.ToTag() == "" && req.Method != "CANCEL" {
		// A fork to two accounts of one Stack is no loop.
		k := ua.mergeKeyOf(req, ua)
		if _, dup := ua.merged[k]; dup {
			ua.reply(tx, 482, "", nil)
			return
		}
		ua.merged[k] = struct{}{}
		tx.SetTUKey(k)
		ua.mergedPeak = max(ua.mergedPeak, len(ua.merged))
	}
	// §8.2.2.3: extensions the request requires (most requires none:
	// reading the values costs allocations).
	if req.Method != "CANCEL" && req.Header.Has("Require") {
		var unsupported []string
		for ext := range req.Header.Values("Require") {
			if !supported(ext) {
				unsupported = append(unsupported, ext)
			}
		}
		if len(unsupported) > 0 {
			ua.reply(tx, 420, "", func(r *message.Response) { r.Header.Add("Unsupported", strings.Join(unsupported, ", ")) })
			return
		}
	}
	if req.Method == "CANCEL" {
		ua.onCancel(tx, req)
		return
	}
	// §12.2.2: requests inside a dialog go to the dialog's usage (a
	// subscription, a call …); those of a dialog that does not exist get
	// 481. A usage may also claim a request before its dialog exists (a
	// NOTIFY that overtakes the 2xx to its SUBSCRIBE).
	if req.Header.ToTag() != "" {
		d, err := ua.dialogs.MatchRequest(req)
		if d != nil {
			if u := ua.usages[d.ID]; u != nil {
				if err := d.ReceiveRequest(req); err != nil {
					if errors.Is(err, dialog.ErrCSeqOrder) {
						ua.reply(tx, 500, "CSeq Out of Order", nil)
					} else {
						ua.reply(tx, 481, "", nil)
					}
					return
				}
				u.onRequest(tx, req, d)
				return
			}
		}
		for _, c := range ua.claims {
			if c(tx, req) {
				return
			}
		}
		if d == nil || errors.Is(err, dialog.ErrNoDialog) {
			ua.reply(tx, 481, "", nil)
			return
		}
	}
	allow := func(r *message.Response) { r.Header.Add("Allow", ua.allow()) }
	switch req.Method {
	case "OPTIONS":
		ua.reply(tx, 200, "", func(r *message.Response) {
			allow(r)
			r.Header.Add("Accept", "application/sdp, text/plain")
			r.Header.Add("Supported", strings.Join(supportedExtensions, ", "))
		})
		return
	case "MESSAGE":
		if d := ua.opts.Delegate.OnMessage; d != nil {
			ua.deliver(tx, req, src, d)
			return
		}
	case "SUBSCRIBE":
		if d := ua.opts.Delegate.OnSubscribe; d != nil {
			ua.onSubscribe(tx, req, src, d)
			return
		}
	case "INVITE":
		// RFC 3261 §8.2.3: a body we cannot read, or an Accept we cannot
		// satisfy.
		if len(req.Body) > 0 {
			if mt := req.Header.MediaType(); mt != "application/sdp" && mt != "multipart/mixed" {
				ua.reply(tx, 415, "", func(r *message.Response) { r.Header.Add("Accept", "application/sdp") })
				return
			}
		}
		if req.Header.Has("Accept") && !acceptsSDP(&req.Header) {
			ua.reply(tx, 406, "", func(r *message.Response) { r.Header.Add("Accept", "application/sdp") })
			return
		}
		if f := ua.opts.Delegate.OnInvite; f != nil {
			if ua.inviteOverCap() {
				ua.reply(tx, 503, "", func(r *message.Response) { r.Header.Add("Retry-After", ua.limits.retryAfter()) })
				return
			}
			ua.onInvite(tx, req, src, f)
			return
		}
		ua.reply(tx, 480, "", nil)
		return
	case "NOTIFY":
		// Out of dialog (an unsolicited NOTIFY, e.g. message-summary):
		// the application's, or no subscription (481).
		if d := ua.opts.Delegate.OnNotify; d != nil {
			ua.deliver(tx, req, src, d)
			return
		}
		ua.reply(tx, 481, "", nil)
		return
	case "REFER":
		if d := ua.opts.Delegate.OnRefer; d != nil {
			ua.deliver(tx, req, src, d)
			return
		}
	case "BYE":
		ua.reply(tx, 481, "", nil)
		return
	}
	if d := ua.opts.Delegate.OnRequest; d != nil {
		ua.deliver(tx, req, src, d)
		return
	}
	code := 501
	if knownMethod(req.Method) {
		code = 405
	}
	ua.reply(tx, code, "", allow)
}

// deliver hands an incoming request to a delegate callback on the
// UserAgent's lane.
func (ua *UserAgent) deliver(tx *transaction.Server, req *message.Request, src any, f func(*IncomingRequest)) {
	ua.deliverOn(&ua.cbq, tx, req, src, f)
}

// deliverOn hands an incoming request to a delegate callback on lane q
// (a session's, for a request in its dialog).
func (ua *UserAgent) deliverOn(q *callbackQueue, tx *transaction.Server, req *message.Request, src any, f func(*IncomingRequest)) {
	ir := &IncomingRequest{Request: req, ua: ua, tx: tx}
	if flow, ok := src.(transport.Flow); ok {
		ir.Flow = flow
	}
	q.push(func() {
		f(ir)
		if !ir.answered.Load() {
			if err := ir.Accept(context.Background()); err != nil {
				ua.log.Debug("sip: default 200 not sent", "method", req.Method, "err", err)
			}
		}
	})
}

// IncomingRequest is a request given to a delegate callback. The callback
// answers it with Accept, Reject or Respond; if it returns without doing
// so, the request is accepted with 200.
type IncomingRequest struct {
	// Request is the request as received.
	Request *message.Request
	// Flow is the connection or socket it came on.
	Flow transport.Flow

	ua       *UserAgent
	tx       *transaction.Server
	answered atomic.Bool
}

// Accept answers 200 OK. It returns once the response is handed to the
// transaction, or with ctx's error wrapped in ErrCanceled.
func (r *IncomingRequest) Accept(ctx context.Context) error { return r.Reject(ctx, 200, "") }

// Reject answers with code (a final status) and reason ("" for the
// standard phrase).
func (r *IncomingRequest) Reject(ctx context.Context, code int, reason string) error {
	resp := r.ua.newResponse(r.Request, code, reason)
	return r.Respond(ctx, resp)
}

// NewResponse builds a response to the request for Respond, with the
// UserAgent's Server header.
func (r *IncomingRequest) NewResponse(code int, reason string) *message.Response {
	return r.ua.newResponse(r.Request, code, reason)
}

// Respond sends resp (built with NewResponse and completed by the caller).
// Only one final response can be sent; later ones fail. If ctx ends
// before the UserAgent takes the response, Respond returns an error
// wrapping ErrCanceled and ctx's error.
func (r *IncomingRequest) Respond(ctx context.Context, resp *message.Response) error {
	if resp.StatusCode >= 200 && !r.answered.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: already answered", ErrInvalidState)
	}
	var err error
	if cerr := r.ua.call(ctx, func() { err = r.ua.respond(r.tx, resp) }); cerr != nil {
		return cerr
	}
	return err
}

// contactAddress returns the UserAgent's Contact for the current
// connection (RFC 7118 §5 on WebSocket: a .invalid host).
func (ua *UserAgent) contactAddress() message.Address {
	var u message.URI
	switch {
	case ua.up != nil:
		if f, ok := ua.up.Flow(); ok {
			u = ua.tp.ContactURI(ua.contactName, f)
		} else {
			u = message.URI{Scheme: "sip", User: ua.contactName, Host: ua.tp.InvalidHost()}
		}
	case len(ua.listenAddrs) > 0:
		la := ua.listenAddrs[0]
		u = message.URI{Scheme: "sip", User: ua.contactName, Host: la.addr.Addr().String(), Port: int(la.addr.Port())}
		if la.proto.Secure() {
			u.Scheme = "sips"
		}
		if la.proto != transport.UDP {
			u.Params = message.Params("transport=" + la.proto.Param())
		}
	default:
		u = message.URI{Scheme: "sip", User: ua.contactName, Host: ua.tp.InvalidHost()}
	}
	for n, v := range ua.opts.ContactParams.All() {
		u.Params = u.Params.Set(n, v)
	}
	return message.Address{DisplayName: ua.opts.DisplayName, URI: u}
}

// acceptsSDP reports whether an Accept header admits application/sdp.
func acceptsSDP(h *message.Header) bool {
	for v := range h.Values("Accept") {
		mt, _, _ := strings.Cut(v, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/sdp", "application/*", "*/*":
			return true
		}
	}
	return false
}

// nextCSeq returns an outgoing.rebuild that resends a challenged request
// with the next number of the counter seq (a dialog's local CSeq, a
// registration's …).
func nextCSeq(seq *uint32) func(*message.Request) *message.Request {
	return func(old *message.Request) *message.Request {
		next := old.Clone()
		*seq++
		c, _ := old.Header.CSeq()
		next.Header.Set("CSeq", message.CSeq{Seq: *seq, Method: c.Method}.String())
		return next
	}
}

// await waits for the outcome of an operation posted to the loop, for
// ctx, or for the UserAgent to stop.
func (ua *UserAgent) await(ctx context.Context, errc <-chan error) error {
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		select {
		case err := <-errc: // the outcome won the race: it counts
			return err
		default:
		}
		return canceled(ctx)
	case <-ua.quit:
		select {
		case err := <-errc:
			return err
		default:
		}
		return ErrStopped
	}
}
