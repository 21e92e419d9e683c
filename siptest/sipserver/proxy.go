package sipserver

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// serverTx is the server side of a proxied (or locally answered)
// request: it absorbs retransmissions and resends the last response.
type serverTx struct {
	key     string
	req     *message.Request // as received
	flow    transport.Flow   // where it came from, where responses go
	last    *message.Response
	final   *message.Response
	client  *clientTx
	expires time.Time
	// Timer G: a non-2xx final response to an INVITE over UDP is
	// retransmitted until the ACK comes.
	interval     time.Duration
	retransmitAt time.Time
}

// clientTx is the forwarded request: it matches responses by the branch
// of the proxy's Via, retransmits over UDP, and times out.
type clientTx struct {
	key          string           // branch|method
	req          *message.Request // as sent
	flow         transport.Flow
	server       *serverTx // nil for the proxy's own CANCEL
	provisional  bool
	final        bool
	cancel       cancelState
	interval     time.Duration
	retransmitAt time.Time
	timeout      time.Time
	expires      time.Time // removal, once final
}

type cancelState uint8

const (
	cancelNone cancelState = iota
	cancelPending
	cancelSent
)

func (c *clientTx) finish(now time.Time) {
	c.final = true
	c.retransmitAt, c.timeout = time.Time{}, time.Time{}
	c.expires = now.Add(lingerFinal)
}

// serverKey identifies a server transaction (RFC 3261 §17.2.3): branch,
// sent-by and method, with ACK matching its INVITE.
func serverKey(req *message.Request, method string) string {
	v, _ := req.Header.TopVia()
	b := v.Branch()
	if !strings.HasPrefix(b, message.MagicCookie) {
		cs, _ := req.Header.CSeq()
		b = req.Header.CallID() + "|" + req.Header.FromTag() + "|" + strconv.FormatUint(uint64(cs.Seq), 10)
	}
	return b + "|" + strings.ToLower(v.SentBy()) + "|" + method
}

func (s *Server) onMessage(in transport.Incoming) {
	switch m := in.Msg.(type) {
	case *message.Request:
		s.nameFlow(m, in.Flow)
		s.record(In, in.Flow, m, nil)
		err := in.Err
		if err == nil {
			err = m.Validate()
		}
		if err != nil {
			if m.Method != "ACK" {
				code := message.StatusCode(err)
				if code < 400 {
					code = 400
				}
				s.sendResponse(in.Flow, message.NewResponse(m, code, "", ""))
			}
			return
		}
		s.onRequest(m, in.Flow)
	case *message.Response:
		s.record(In, in.Flow, m, nil)
		if in.Err == nil && m.Validate() == nil {
			s.onResponse(m)
		}
	}
}

func (s *Server) onRequest(req *message.Request, flow transport.Flow) {
	now := time.Now()
	if req.Method == "ACK" {
		st := s.servers[serverKey(req, "INVITE")]
		if st != nil && st.final != nil && st.final.StatusCode >= 300 {
			st.retransmitAt = time.Time{}
			return // the ACK of a non-2xx final response: hop by hop, ours
		}
		s.proxy(nil, req, flow)
		return
	}
	key := serverKey(req, req.Method)
	if st := s.servers[key]; st != nil {
		// A retransmission: answer it as before.
		if st.last != nil {
			s.sendResponse(st.flow, st.last)
		}
		return
	}
	st := &serverTx{key: key, req: req, flow: flow, expires: now.Add(maxTxLife)}
	s.servers[key] = st
	s.remember(req, flow)
	if req.Method == "CANCEL" {
		s.onCancel(st)
		return
	}
	s.proxy(st, req, flow)
}

// proxy handles a request as RFC 3261 §16 asks: route processing, local
// requests (REGISTER, OPTIONS to the server), location lookup, and
// forwarding. st is nil for an ACK, which is forwarded statelessly.
func (s *Server) proxy(st *serverTx, req *message.Request, flow transport.Flow) {
	now := time.Now()
	fail := func(code int, reason string) {
		if st != nil {
			s.respond(st, code, reason, nil)
		}
	}
	fwd := req.Clone()
	routes, err := fwd.Header.Routes()
	if err != nil {
		fail(400, "Bad Request (Route)")
		return
	}
	// §16.4: a strict router put our Record-Route URI in the
	// Request-URI and the real one last in Route.
	if fwd.URI.Params.Has("lr") && s.ourAddr(fwd.URI) && len(routes) > 0 {
		fwd.URI = routes[len(routes)-1].URI
		routes = routes[:len(routes)-1]
	}
	// Loose routing: remove our own entries (two when we double
	// record-routed).
	for len(routes) > 0 && s.self(routes[0].URI) {
		routes = routes[1:]
	}
	fwd.Header.Del("Route")
	for _, r := range routes {
		fwd.Header.Add("Route", r.String())
	}

	if len(routes) == 0 && s.self(fwd.URI) && (fwd.URI.User == "" || req.Method == "REGISTER") {
		if st == nil {
			return // an ACK for the server itself
		}
		switch req.Method {
		case "REGISTER":
			s.register(st)
		case "OPTIONS":
			s.respond(st, 200, "", func(r *message.Response) {
				r.Header.Add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE, PRACK")
				r.Header.Add("Accept", "application/sdp")
				r.Header.Add("Supported", "outbound, path")
			})
		default:
			s.respond(st, 405, "", func(r *message.Response) { r.Header.Add("Allow", "OPTIONS, REGISTER") })
		}
		return
	}

	mf, present, _ := fwd.Header.MaxForwards()
	if !present {
		mf = 70
	}
	if mf <= 0 {
		fail(483, "")
		return
	}
	fwd.Header.Set("Max-Forwards", strconv.Itoa(mf-1))

	if st != nil && s.proxyAuth != nil && needsProxyAuth(req) {
		from, _ := req.Header.From()
		if _, local := s.opts.Users[from.URI.User]; local && s.self(from.URI) {
			name, err := s.proxyAuth.Verify(req)
			if err != nil {
				s.challenge(st, s.proxyAuth, 407, err)
				return
			}
			if name != from.URI.User {
				s.respond(st, 403, "Forbidden (credentials of another user)", nil)
				return
			}
			fwd.Header.Del("Proxy-Authorization")
		}
	}

	var targets []transport.Target
	switch {
	case len(routes) > 0:
		if targets, err = s.resolve(routes[0].URI); err != nil {
			fail(503, "Service Unavailable (next hop: "+err.Error()+")")
			return
		}
	case s.self(fwd.URI):
		user := fwd.URI.User
		bs := s.current(user, now)
		if len(bs) == 0 {
			if s.isKnown(user) {
				fail(480, "")
			} else {
				fail(404, "")
			}
			return
		}
		fwd.URI = bs[0].contact.URI
		fwd.URI.Headers = ""
		targets = s.bindingTargets(bs[0])
	default:
		if b := s.bindingFor(fwd.URI, now); b != nil {
			targets = s.bindingTargets(b)
		} else if f, ok := s.wsFlows[strings.ToLower(fwd.URI.Host)]; ok {
			targets = []transport.Target{f.Target()}
		} else if !reachable(fwd.URI) {
			fail(480, "Temporarily Unavailable (no flow to "+fwd.URI.Host+")")
			return
		} else if targets, err = s.resolve(fwd.URI); err != nil {
			fail(404, "Not Found (cannot resolve "+fwd.URI.Host+")")
			return
		}
	}

	if len(targets) == 0 {
		fail(404, "Not Found (no target)")
		return
	}
	if st != nil && recordRoutes(req) {
		in, out := flow.Proto, targets[0].Proto
		outAddr := s.listenerFor(out)
		if out != in && outAddr.IsValid() {
			// Double record-routing (RFC 5658): one entry for each side.
			fwd.Header.Prepend("Record-Route", s.recordRoute(in, s.listenerFor(in), flow.Local))
			fwd.Header.Prepend("Record-Route", s.recordRoute(out, outAddr, flow.Local))
		} else {
			fwd.Header.Prepend("Record-Route", s.recordRoute(in, s.listenerFor(in), flow.Local))
		}
	}

	branch := message.NewBranch()
	fwd.Header.PrependVia(message.Via{Transport: string(targets[0].Proto), Host: "proxy.invalid",
		Params: message.Params("branch=" + branch)})
	if st != nil && req.Method == "INVITE" {
		s.respond(st, 100, "", nil)
	}
	ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	f, err := s.tr.SendRequest(ctx, fwd, targets...)
	cancel()
	s.record(Out, orTarget(f, targets[0]), fwd, err)
	if err != nil {
		s.log.Debug("sipserver: forwarding failed", "method", req.Method, "targets", targets, "err", err)
		if errors.Is(err, transport.ErrNoConnection) {
			fail(480, "Temporarily Unavailable (flow closed)")
		} else {
			fail(503, "")
		}
		return
	}
	if st == nil {
		return
	}
	c := &clientTx{key: branch + "|" + req.Method, req: fwd, flow: f, server: st, timeout: now.Add(timerB)}
	if f.Proto == transport.UDP {
		c.interval = timerT1
		c.retransmitAt = now.Add(timerT1)
	}
	st.client = c
	s.clients[c.key] = c
}

func needsProxyAuth(req *message.Request) bool {
	switch req.Method {
	case "INVITE", "MESSAGE", "SUBSCRIBE", "REFER":
		return req.Header.ToTag() == ""
	}
	return false
}

// recordRoutes reports whether the proxy stays in the dialog req may
// create.
func recordRoutes(req *message.Request) bool {
	switch req.Method {
	case "INVITE", "SUBSCRIBE", "REFER", "NOTIFY":
		return req.Header.ToTag() == ""
	}
	return false
}

// recordRoute returns a Record-Route value for the proxy's side facing
// proto: its listener there (or, with none, local).
func (s *Server) recordRoute(p transport.Proto, ap, local netip.AddrPort) string {
	if !ap.IsValid() {
		ap = local
	}
	ip := ap.Addr()
	if ip.IsUnspecified() && local.IsValid() {
		ip = local.Addr()
	}
	u := message.URI{Scheme: "sip", Host: ip.String(), Port: int(ap.Port()),
		Params: message.Params("transport=" + p.Param() + ";lr")}
	return message.Address{URI: u}.String()
}

// bindingTargets returns where to send to a binding: its flow first, then
// its contact when that can be reached without it.
func (s *Server) bindingTargets(b *binding) []transport.Target {
	ts := []transport.Target{b.flow.Target()}
	if b.flow.Proto.Stream() && reachable(b.contact.URI) {
		if more, err := s.resolve(b.contact.URI); err == nil {
			ts = append(ts, more...)
		}
	}
	return ts
}

func (s *Server) resolve(u message.URI) ([]transport.Target, error) {
	ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	defer cancel()
	return s.tr.Resolve(ctx, u)
}

// onCancel answers a CANCEL (RFC 3261 §16.10) and cancels the forwarded
// INVITE once it has had a provisional response.
func (s *Server) onCancel(st *serverTx) {
	ist := s.servers[serverKey(st.req, "INVITE")]
	if ist == nil {
		s.respond(st, 481, "", nil)
		return
	}
	s.respond(st, 200, "", nil)
	if ist.final != nil {
		return
	}
	c := ist.client
	switch {
	case c == nil:
		s.respond(ist, 487, "", nil)
	case c.cancel != cancelNone:
	case c.provisional:
		s.sendCancel(c, st.req.Header.Get("Reason"))
	default:
		c.cancel = cancelPending // RFC 3261 §9.1: not before a provisional
	}
}

// hopRequest builds the CANCEL or ACK of the forwarded INVITE c.req, as
// RFC 3261 §9.1 and §17.1.1.3 say: same Request-URI, top Via, From,
// Call-ID, CSeq number and Route; To from resp for an ACK.
func hopRequest(method string, inv *message.Request, resp *message.Response) *message.Request {
	r := &message.Request{Method: method, URI: inv.URI}
	v, _ := inv.Header.TopVia()
	r.Header.Add("Via", v.String())
	r.Header.Add("From", inv.Header.Get("From"))
	to := inv.Header.Get("To")
	if resp != nil {
		to = resp.Header.Get("To")
	}
	r.Header.Add("To", to)
	r.Header.Add("Call-ID", inv.Header.CallID())
	cs, _ := inv.Header.CSeq()
	r.Header.Add("CSeq", message.CSeq{Seq: cs.Seq, Method: method}.String())
	for rt := range inv.Header.Values("Route") {
		r.Header.Add("Route", rt)
	}
	r.Header.Add("Max-Forwards", "70")
	return r
}

func (s *Server) sendCancel(c *clientTx, reason string) {
	c.cancel = cancelSent
	r := hopRequest("CANCEL", c.req, nil)
	if reason != "" {
		r.Header.Add("Reason", reason)
	}
	ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	f, err := s.tr.SendRequest(ctx, r, c.flow.Target())
	cancel()
	s.record(Out, orTarget(f, c.flow.Target()), r, err)
	if err != nil {
		return
	}
	now := time.Now()
	v, _ := r.Header.TopVia()
	cc := &clientTx{key: v.Branch() + "|CANCEL", req: r, flow: f, timeout: now.Add(timerB)}
	if f.Proto == transport.UDP {
		cc.interval = timerT1
		cc.retransmitAt = now.Add(timerT1)
	}
	s.clients[cc.key] = cc
}

func (s *Server) sendACK(c *clientTx, resp *message.Response) {
	r := hopRequest("ACK", c.req, resp)
	ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	f, err := s.tr.SendRequest(ctx, r, c.flow.Target())
	cancel()
	s.record(Out, orTarget(f, c.flow.Target()), r, err)
}

// onResponse matches a response to the forwarded request and relays it
// (RFC 3261 §16.7), without the proxy's Via.
func (s *Server) onResponse(resp *message.Response) {
	v, _ := resp.Header.TopVia()
	cs, _ := resp.Header.CSeq()
	c := s.clients[v.Branch()+"|"+cs.Method]
	if c == nil {
		s.log.Debug("sipserver: response matches no transaction", "status", resp.StatusCode, "branch", v.Branch())
		return
	}
	now := time.Now()
	code := resp.StatusCode
	invite := c.req.Method == "INVITE"
	st := c.server
	if st == nil { // our own CANCEL
		if code >= 200 {
			c.finish(now)
		} else if !c.retransmitAt.IsZero() {
			c.interval = timerT2
		}
		return
	}
	switch {
	case code < 200:
		c.provisional = true
		if invite {
			c.retransmitAt = time.Time{}
			if !c.final {
				c.timeout = now.Add(timerC)
			}
		} else if !c.retransmitAt.IsZero() {
			c.interval = timerT2
		}
		if c.cancel == cancelPending {
			s.sendCancel(c, "")
		}
		if code > 100 && st.final == nil {
			s.relay(st, resp)
		}
	case code < 300:
		first := !c.final
		c.finish(now)
		// Every 2xx to an INVITE goes through, retransmissions included.
		if invite || (first && st.final == nil) {
			s.relay(st, resp)
		}
	default:
		if invite {
			s.sendACK(c, resp)
		}
		first := !c.final
		c.finish(now)
		if first && st.final == nil {
			s.relay(st, resp)
		}
	}
}

// relay sends a response upstream without the top (our) Via.
func (s *Server) relay(st *serverTx, resp *message.Response) {
	r := resp.Clone()
	r.Header.RemoveTopVia()
	if r.Header.ViaCount() == 0 {
		return
	}
	s.answered(st, r)
}

// respond answers st with a response of the server's own.
func (s *Server) respond(st *serverTx, code int, reason string, edit func(*message.Response)) {
	r := message.NewResponse(st.req, code, reason, "")
	if edit != nil {
		edit(r)
	}
	s.answered(st, r)
}

func (s *Server) answered(st *serverTx, r *message.Response) {
	st.last = r
	if r.StatusCode >= 200 {
		if st.final == nil {
			st.final = r
		}
		now := time.Now()
		st.expires = now.Add(lingerFinal)
		if r.StatusCode >= 300 && st.req.Method == "INVITE" && st.flow.Proto == transport.UDP && st.final == r {
			st.interval = timerT1
			st.retransmitAt = now.Add(timerT1)
		}
	}
	s.sendResponse(st.flow, r)
}

func (s *Server) sendResponse(flow transport.Flow, r *message.Response) {
	ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	f, err := s.tr.SendResponse(ctx, r, flow)
	cancel()
	if f.IsZero() {
		f = flow
	}
	s.record(Out, f, r, err)
	if err != nil {
		s.log.Debug("sipserver: sending a response failed", "status", r.StatusCode, "flow", flow, "err", err)
	}
}

func (s *Server) onTimer(now time.Time) {
	for key, c := range s.clients {
		if !c.expires.IsZero() && !now.Before(c.expires) {
			delete(s.clients, key)
			continue
		}
		if !c.retransmitAt.IsZero() && !now.Before(c.retransmitAt) {
			ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
			f, err := s.tr.Send(ctx, c.req, c.flow.Target())
			cancel()
			s.record(Out, orTarget(f, c.flow.Target()), c.req, err)
			c.interval *= 2
			if c.req.Method != "INVITE" {
				c.interval = min(c.interval, timerT2)
			}
			c.retransmitAt = now.Add(c.interval)
		}
		if !c.timeout.IsZero() && !now.Before(c.timeout) {
			s.timedOut(c, now)
		}
	}
	for key, st := range s.servers {
		if !now.Before(st.expires) {
			delete(s.servers, key)
			continue
		}
		if !st.retransmitAt.IsZero() && !now.Before(st.retransmitAt) {
			s.sendResponse(st.flow, st.final)
			st.interval = min(2*st.interval, timerT2)
			st.retransmitAt = now.Add(st.interval)
		}
	}
	if !s.nextSweep.IsZero() && !now.Before(s.nextSweep) {
		s.sweep(now)
	}
}

// timedOut ends a client transaction that got no final response in time
// (Timer B, F or C): an INVITE is cancelled and answered 408 upstream.
func (s *Server) timedOut(c *clientTx, now time.Time) {
	c.finish(now)
	st := c.server
	if st == nil || c.req.Method != "INVITE" {
		return // RFC 4320: no 408 for a non-INVITE
	}
	if c.provisional && c.cancel != cancelSent {
		s.sendCancel(c, "")
	}
	if st.final == nil {
		s.respond(st, 408, "", nil)
	}
}

// nameFlow names the peer of a flow after the user registering from it
// (or, for a flow not yet named, the user sending a new request on it).
func (s *Server) nameFlow(req *message.Request, f transport.Flow) {
	var user string
	replace := false
	switch {
	case req.Method == "REGISTER":
		to, _ := req.Header.To()
		user, replace = to.URI.User, true
	case req.Header.ToTag() == "":
		from, _ := req.Header.From()
		user = from.URI.User
	}
	if user == "" {
		return
	}
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	k := peerOf(f)
	if _, ok := s.names[k]; !ok || replace {
		s.names[k] = user
	}
}

// orTarget returns f, or for a send that failed before it had a flow, a
// flow naming the target.
func orTarget(f transport.Flow, t transport.Target) transport.Flow {
	if f.IsZero() {
		return transport.Flow{Proto: t.Proto, Local: t.Local, Remote: t.Addr, ID: t.ConnID}
	}
	return f
}
