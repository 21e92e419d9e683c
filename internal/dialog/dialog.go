// Package dialog keeps SIP dialog state (RFC 3261 §12): dialogs created
// by 1xx-with-tag and 2xx responses on both sides, their route sets,
// remote targets and sequence numbers; it builds in-dialog requests with
// loose and strict routing, builds the ACK for a 2xx, and holds the UAS
// core's 2xx retransmission machine (§13.3.1.4). Like the transaction
// layer, it is pure: no goroutines, no timers, time comes in as input.
package dialog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sipua/sip/message"
)

// Errors.
var (
	// ErrNoDialog reports a request with a To tag that matches no dialog:
	// a UAS answers 481 (RFC 3261 §12.2.2).
	ErrNoDialog = errors.New("dialog: no such dialog")
	// ErrCSeqOrder reports an in-dialog request whose CSeq is lower than
	// the last one seen: a UAS answers 500 (RFC 3261 §12.2.2).
	ErrCSeqOrder = errors.New("dialog: CSeq out of order")
	// ErrCannotCreate reports a response or request that cannot create a
	// dialog (no To tag, no Contact, malformed headers).
	ErrCannotCreate = errors.New("dialog: cannot create dialog")
	// ErrTerminated reports use of a terminated dialog.
	ErrTerminated = errors.New("dialog: terminated")
)

// State is the state of a dialog.
type State uint8

// Dialog states.
const (
	Early State = iota + 1
	Confirmed
	Terminated
)

func (s State) String() string {
	switch s {
	case Early:
		return "Early"
	case Confirmed:
		return "Confirmed"
	case Terminated:
		return "Terminated"
	}
	return "Unknown"
}

// ID identifies a dialog: Call-ID, local tag and remote tag.
type ID struct {
	CallID    string
	LocalTag  string
	RemoteTag string
}

func (id ID) String() string {
	return id.CallID + ";local=" + id.LocalTag + ";remote=" + id.RemoteTag
}

// Dialog is the state of one dialog. It keeps its strings packed in one
// private allocation, so an idle dialog costs a few hundred bytes and does
// not keep the message it was created from alive.
type Dialog struct {
	ID    ID
	State State
	// UAC reports whether this side sent the request that created the
	// dialog.
	UAC bool
	// Secure is set for dialogs created by a request to a SIPS URI.
	Secure bool
	// RemoteSeqSet tells whether RemoteSeq holds a value.
	RemoteSeqSet bool
	// LocalSeq is the CSeq number of the last request sent in the dialog
	// (0: none yet).
	LocalSeq uint32
	// RemoteSeq is the CSeq number of the last request received.
	RemoteSeq uint32

	local  string // our From/To value without tag
	remote string // the peer's, without tag
	target string // remote target URI
	routes string // route set as a Route header value, "" when empty

	ackSeq    uint32 // CSeq of the INVITE last acknowledged (UAC)
	ackBranch string // branch of that ACK, to send the same ACK again
}

// Local returns the local address (URI and display name, no tag).
func (d *Dialog) Local() message.Address { a, _ := message.ParseAddress(d.local); return a }

// Remote returns the remote address (URI and display name, no tag).
func (d *Dialog) Remote() message.Address { a, _ := message.ParseAddress(d.remote); return a }

// RemoteTarget returns the peer's Contact URI.
func (d *Dialog) RemoteTarget() message.URI { u, _ := message.ParseURI(d.target); return u }

// RouteSet returns the route set in the order a Route header lists it.
func (d *Dialog) RouteSet() []message.URI {
	if d.routes == "" {
		return nil
	}
	var h message.Header
	h.Add("Route", d.routes)
	rs, _ := h.Routes()
	out := make([]message.URI, len(rs))
	for i, a := range rs {
		out[i] = a.URI
	}
	return out
}

// pack copies every string of the dialog into one allocation.
func (d *Dialog) pack() {
	parts := [...]*string{&d.ID.CallID, &d.ID.LocalTag, &d.ID.RemoteTag, &d.local, &d.remote, &d.target, &d.routes, &d.ackBranch}
	n := 0
	for _, p := range parts {
		n += len(*p)
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.WriteString(*p)
	}
	all := b.String()
	off := 0
	for _, p := range parts {
		l := len(*p)
		*p = all[off : off+l]
		off += l
	}
}

func addrString(a message.Address) string {
	a.Params = ""
	return a.String()
}

func routeString(uris []message.URI) string {
	var b []byte
	for i, u := range uris {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '<')
		b = u.AppendTo(b)
		b = append(b, '>')
	}
	return string(b)
}

func createError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCannotCreate}, args...)...)
}

// NewUAC creates the dialog a UAC holds after sending req (INVITE,
// SUBSCRIBE, REFER …) and receiving resp, a 101–199 response with a To tag
// (early dialog) or a 2xx (confirmed) — RFC 3261 §12.1.2.
func NewUAC(req *message.Request, resp *message.Response) (*Dialog, error) {
	if resp.StatusCode < 101 || resp.StatusCode >= 300 {
		return nil, createError("status %d", resp.StatusCode)
	}
	from, err := req.Header.From()
	if err != nil {
		return nil, createError("%v", err)
	}
	to, err := resp.Header.To()
	if err != nil {
		return nil, createError("%v", err)
	}
	if to.Tag() == "" {
		return nil, createError("response without To tag")
	}
	cseq, err := req.Header.CSeq()
	if err != nil {
		return nil, createError("%v", err)
	}
	d := &Dialog{
		ID:       ID{CallID: req.Header.CallID(), LocalTag: from.Tag(), RemoteTag: to.Tag()},
		State:    Early,
		UAC:      true,
		Secure:   req.URI.Scheme == "sips",
		LocalSeq: cseq.Seq,
		local:    addrString(from),
		remote:   addrString(to),
	}
	if resp.StatusCode >= 200 {
		d.State = Confirmed
	}
	rr, err := resp.Header.RecordRoutes()
	if err != nil {
		return nil, createError("%v", err)
	}
	d.routes = reversedRoutes(rr)
	if err := d.setTarget(&resp.Header); err != nil {
		// An early dialog may come from a 1xx without Contact; its target
		// then stays the Request-URI until a later response sets it.
		if d.State == Confirmed {
			return nil, err
		}
		d.target = req.URI.String()
	}
	d.pack()
	return d, nil
}

// NewUAS creates the dialog a UAS holds after answering req with resp, a
// 101–199 (early) or 2xx (confirmed) response carrying the UAS's To tag —
// RFC 3261 §12.1.1.
func NewUAS(req *message.Request, resp *message.Response) (*Dialog, error) {
	if resp.StatusCode < 101 || resp.StatusCode >= 300 {
		return nil, createError("status %d", resp.StatusCode)
	}
	from, err := req.Header.From()
	if err != nil {
		return nil, createError("%v", err)
	}
	to, err := resp.Header.To()
	if err != nil {
		return nil, createError("%v", err)
	}
	if to.Tag() == "" {
		return nil, createError("response without To tag")
	}
	cseq, err := req.Header.CSeq()
	if err != nil {
		return nil, createError("%v", err)
	}
	d := &Dialog{
		ID:           ID{CallID: req.Header.CallID(), LocalTag: to.Tag(), RemoteTag: from.Tag()},
		State:        Early,
		Secure:       req.URI.Scheme == "sips",
		RemoteSeq:    cseq.Seq,
		RemoteSeqSet: true,
		local:        addrString(to),
		remote:       addrString(from),
	}
	if resp.StatusCode >= 200 {
		d.State = Confirmed
	}
	rr, err := req.Header.RecordRoutes()
	if err != nil {
		return nil, createError("%v", err)
	}
	uris := make([]message.URI, len(rr))
	for i, a := range rr {
		uris[i] = a.URI
	}
	d.routes = routeString(uris)
	if err := d.setTarget(&req.Header); err != nil {
		return nil, err
	}
	d.pack()
	return d, nil
}

func (d *Dialog) setTarget(h *message.Header) error {
	contacts, err := h.Contacts()
	if err != nil {
		return createError("%v", err)
	}
	if len(contacts) != 1 || contacts[0].Wildcard {
		return createError("need exactly one Contact, have %d", len(contacts))
	}
	d.target = contacts[0].URI.String()
	return nil
}

// reversedRoutes returns the UAC's route set: the Record-Route list
// reversed.
func reversedRoutes(rr []message.Address) string {
	uris := make([]message.URI, len(rr))
	for i, a := range rr {
		uris[len(rr)-1-i] = a.URI
	}
	return routeString(uris)
}

// refreshTarget takes the single Contact of h as remote target.
func (d *Dialog) refreshTarget(h *message.Header) {
	if c, err := h.Contacts(); err == nil && len(c) == 1 && !c[0].Wildcard {
		d.target = c[0].URI.String()
		d.pack()
	}
}

// Confirm moves an early dialog to Confirmed on a 2xx (UAC: the 2xx
// response; the route set is recomputed from it, RFC 3261 §13.2.2.4) and
// takes the 2xx's Contact as remote target.
func (d *Dialog) Confirm(resp *message.Response) error {
	if d.State == Terminated {
		return ErrTerminated
	}
	if d.UAC && d.State == Early {
		rr, err := resp.Header.RecordRoutes()
		if err != nil {
			return err
		}
		d.routes = reversedRoutes(rr)
	}
	if d.UAC {
		d.refreshTarget(&resp.Header)
	}
	d.State = Confirmed
	return nil
}

// Terminate ends the dialog.
func (d *Dialog) Terminate() { d.State = Terminated }

// ReceiveRequest checks and records an in-dialog request from the peer
// (RFC 3261 §12.2.2): a CSeq lower than the last one is refused with an
// error wrapping ErrCSeqOrder (answer 500); ACK and CANCEL are not
// sequenced. A target refresh request (INVITE, UPDATE, SUBSCRIBE, NOTIFY,
// REFER) with a Contact updates the remote target.
func (d *Dialog) ReceiveRequest(req *message.Request) error {
	if d.State == Terminated {
		return ErrTerminated
	}
	if req.Method == "ACK" || req.Method == "CANCEL" {
		return nil
	}
	cseq, err := req.Header.CSeq()
	if err != nil {
		return err
	}
	if d.RemoteSeqSet && cseq.Seq <= d.RemoteSeq {
		return fmt.Errorf("%w: %d after %d", ErrCSeqOrder, cseq.Seq, d.RemoteSeq)
	}
	d.RemoteSeq, d.RemoteSeqSet = cseq.Seq, true
	if IsTargetRefresh(req.Method) {
		d.refreshTarget(&req.Header)
	}
	return nil
}

// RefreshTarget takes the Contact of a 2xx to a target refresh request
// this side sent (re-INVITE, UPDATE …) as the new remote target.
func (d *Dialog) RefreshTarget(resp *message.Response) { d.refreshTarget(&resp.Header) }

// IsTargetRefresh reports whether method is a target refresh request.
func IsTargetRefresh(method string) bool {
	switch method {
	case "INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER":
		return true
	}
	return false
}

// NewRequest builds an in-dialog request (RFC 3261 §12.2.1.1) with the
// next local CSeq: From and To with their tags, Call-ID, CSeq,
// Max-Forwards, and the Request-URI and Route set by loose or strict
// routing. Via and Contact are left to the caller. ACK and CANCEL are not
// built here (see NewAck; CANCEL comes from the transaction layer).
func (d *Dialog) NewRequest(method string) (*message.Request, error) {
	if d.State == Terminated {
		return nil, ErrTerminated
	}
	if method == "ACK" || method == "CANCEL" {
		return nil, fmt.Errorf("dialog: %s is not built by NewRequest", method)
	}
	if d.LocalSeq == 0 {
		d.LocalSeq = 1 + uint32(randomSeq())
	} else {
		d.LocalSeq++
	}
	return d.build(method, d.LocalSeq), nil
}

// NewAck builds the ACK for a 2xx to the INVITE with CSeq number
// inviteSeq (RFC 3261 §13.2.2.4): the route set, the remote target, and
// the CSeq number of the INVITE. The caller adds a Via with a new branch
// and any body.
func (d *Dialog) NewAck(inviteSeq uint32) *message.Request {
	return d.build("ACK", inviteSeq)
}

func (d *Dialog) build(method string, seq uint32) *message.Request {
	r := &message.Request{Method: method}
	h := &r.Header
	routes := d.RouteSet()
	// Loose routing when the first route has lr, or when there is none.
	if len(routes) == 0 || routes[0].Params.Has("lr") {
		r.URI = d.RemoteTarget()
		if d.routes != "" {
			h.Add("Route", d.routes)
		}
	} else {
		// Strict routing: the first route becomes the Request-URI
		// (without the parameters not allowed there), the remote target
		// the last Route.
		first := routes[0]
		first.Params = first.Params.Del("method").Del("maddr").Del("ttl").Del("transport").Del("lr")
		first.Headers = ""
		r.URI = first
		rest := append(routes[1:len(routes):len(routes)], d.RemoteTarget())
		h.Add("Route", routeString(rest))
	}
	h.Add("From", d.local+";tag="+d.ID.LocalTag)
	if d.ID.RemoteTag != "" {
		h.Add("To", d.remote+";tag="+d.ID.RemoteTag)
	} else {
		h.Add("To", d.remote)
	}
	h.Add("Call-ID", d.ID.CallID)
	h.Add("CSeq", message.CSeq{Seq: seq, Method: method}.String())
	h.Add("Max-Forwards", "70")
	return r
}

// NextHop returns where an in-dialog request built by this dialog goes
// first: the first Route URI, or the Request-URI when there is no Route
// (RFC 3261 §8.1.2).
func NextHop(req *message.Request) message.URI {
	if routes, err := req.Header.Routes(); err == nil && len(routes) > 0 {
		return routes[0].URI
	}
	return req.URI
}
