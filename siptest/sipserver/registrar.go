package sipserver

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// Binding is one contact registered for an address of record.
type Binding struct {
	// User is the user part of the address of record.
	User string
	// Contact is the registered Contact value, with its parameters
	// (+sip.instance, reg-id …) but without expires.
	Contact message.Address
	// Flow is the flow the REGISTER came on: requests for the user are
	// sent on it (RFC 5626 style), which is the only way to reach a
	// WebSocket client whose contact host is ".invalid".
	Flow transport.Flow
	// Expires is when the binding lapses.
	Expires time.Time
}

type binding struct {
	contact  message.Address
	flow     transport.Flow
	instance string // +sip.instance and reg-id of an outbound registration
	regID    string
	callID   string
	cseq     uint32
	expires  time.Time
	updated  time.Time
}

// Bindings returns the current bindings of user (a user name, or an
// address of record such as "sip:alice@sipua.test"), the most recently
// registered first.
func (s *Server) Bindings(user string) []Binding {
	if u, err := message.ParseURI(user); err == nil && u.IsSIP() {
		user = u.User
	}
	var out []Binding
	s.call(func() {
		for _, b := range s.current(user, time.Now()) {
			c := b.contact
			c.Params = c.Params.Del("expires")
			out = append(out, Binding{User: user, Contact: c, Flow: b.flow, Expires: b.expires})
		}
	})
	return out
}

// current returns the live bindings of user, most recent first.
func (s *Server) current(user string, now time.Time) []*binding {
	bs := s.bindings[user]
	kept := bs[:0]
	for _, b := range bs {
		if now.Before(b.expires) {
			kept = append(kept, b)
		}
	}
	s.setBindings(user, kept)
	return s.bindings[user]
}

func (s *Server) setBindings(user string, bs []*binding) {
	if len(bs) == 0 {
		delete(s.bindings, user)
		return
	}
	slices.SortStableFunc(bs, func(a, b *binding) int { return b.updated.Compare(a.updated) })
	s.bindings[user] = bs
}

// isKnown reports whether user exists: one of Options.Users, or (without
// Users) one that has registered before.
func (s *Server) isKnown(user string) bool {
	if s.opts.Users != nil {
		_, ok := s.opts.Users[user]
		return ok
	}
	return s.known[user]
}

// register runs the registrar (RFC 3261 §10.3) on a REGISTER.
func (s *Server) register(st *serverTx) {
	req := st.req
	now := time.Now()
	to, _ := req.Header.To()
	if !s.self(to.URI) || to.URI.User == "" {
		s.respond(st, 404, "Not Found (not a user of "+s.domain+")", nil)
		return
	}
	user := to.URI.User
	if s.regAuth != nil {
		name, err := s.regAuth.Verify(req)
		if err != nil {
			s.challenge(st, s.regAuth, 401, err)
			return
		}
		if name != user {
			s.respond(st, 403, "Forbidden (credentials of another user)", nil)
			return
		}
	}
	contacts, _ := req.Header.Contacts()
	hdrExp, hasExp, err := req.Header.Expires()
	if err != nil {
		s.respond(st, 400, "Bad Request (Expires)", nil)
		return
	}
	cseq, _ := req.Header.CSeq()
	callID := req.Header.CallID()

	// Contact: * with Expires: 0 removes every binding.
	if slices.ContainsFunc(contacts, func(a message.Address) bool { return a.Wildcard }) {
		if len(contacts) != 1 || !hasExp || hdrExp != 0 {
			s.respond(st, 400, "Bad Request (Contact: * needs Expires: 0 alone)", nil)
			return
		}
		for _, b := range s.bindings[user] {
			if b.callID == callID && cseq.Seq <= b.cseq {
				s.respond(st, 500, "Server Internal Error (CSeq out of order)", nil)
				return
			}
		}
		delete(s.bindings, user)
		s.registered(st, user, false)
		return
	}

	// Check every contact before changing anything.
	type change struct {
		c   message.Address
		exp time.Duration
	}
	var changes []change
	for _, c := range contacts {
		exp := s.max
		if hasExp {
			exp = time.Duration(hdrExp) * time.Second
		}
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				s.respond(st, 400, "Bad Request (contact expires)", nil)
				return
			}
			exp = time.Duration(n) * time.Second
		}
		if exp != 0 && exp < s.min {
			s.respond(st, 423, "", func(r *message.Response) {
				r.Header.Add("Min-Expires", strconv.Itoa(int(s.min/time.Second)))
			})
			return
		}
		changes = append(changes, change{c, min(exp, s.max)})
	}
	outbound := req.Header.HasToken("Supported", "outbound") || req.Header.HasToken("Require", "outbound")
	bs := s.current(user, now)
	for _, ch := range changes {
		inst, _ := ch.c.Params.Get("+sip.instance")
		regID, _ := ch.c.Params.Get("reg-id")
		if !outbound {
			inst, regID = "", ""
		}
		i := slices.IndexFunc(bs, func(b *binding) bool {
			if inst != "" && regID != "" {
				return b.instance == inst && b.regID == regID
			}
			return b.instance == "" && b.contact.URI.Equal(ch.c.URI)
		})
		if i >= 0 && bs[i].callID == callID && cseq.Seq <= bs[i].cseq {
			s.respond(st, 500, "Server Internal Error (CSeq out of order)", nil)
			return
		}
		if ch.exp == 0 {
			if i >= 0 {
				bs = slices.Delete(bs, i, i+1)
			}
			continue
		}
		c := ch.c
		c.Params = c.Params.Del("expires")
		b := &binding{contact: c, flow: st.flow, instance: inst, regID: regID, callID: callID,
			cseq: cseq.Seq, expires: now.Add(ch.exp), updated: now}
		if i >= 0 {
			bs[i] = b
		} else {
			bs = append(bs, b)
		}
		s.known[user] = true
		s.sweepAt(b.expires)
	}
	s.setBindings(user, bs)
	s.registered(st, user, outbound)
}

// registered answers 200 with the current bindings of user.
func (s *Server) registered(st *serverTx, user string, outbound bool) {
	now := time.Now()
	bs := s.current(user, now)
	s.respond(st, 200, "", func(r *message.Response) {
		for _, b := range bs {
			c := b.contact
			secs := int((b.expires.Sub(now) + time.Second - 1) / time.Second)
			c.Params = c.Params.Set("expires", strconv.Itoa(secs))
			r.Header.Add("Contact", c.String())
		}
		if outbound && slices.ContainsFunc(bs, func(b *binding) bool { return b.regID != "" }) {
			r.Header.Add("Require", "outbound")
		}
		r.Header.Add("Supported", "outbound, path")
	})
}

// challenge answers a request whose credentials Verify refused.
func (s *Server) challenge(st *serverTx, ds *digest.Server, code int, err error) {
	if errors.Is(err, digest.ErrMalformed) {
		s.respond(st, 400, "Bad Request (credentials)", nil)
		return
	}
	s.respond(st, code, "", func(r *message.Response) {
		ds.Challenge(r, errors.Is(err, digest.ErrStale))
	})
}

// sweepAt makes the loop wake at t to drop what lapsed.
func (s *Server) sweepAt(t time.Time) {
	if s.nextSweep.IsZero() || t.Before(s.nextSweep) {
		s.nextSweep = t
	}
}

// sweep drops lapsed bindings and schedules the next sweep.
func (s *Server) sweep(now time.Time) {
	s.nextSweep = time.Time{}
	for user := range s.bindings {
		for _, b := range s.current(user, now) {
			s.sweepAt(b.expires)
		}
	}
}

// reachable reports whether a contact can be reached without the flow it
// registered on: not a WebSocket contact, not an ".invalid" host.
func reachable(u message.URI) bool {
	if tp, ok := u.Params.Get("transport"); ok {
		if p, ok := transport.ParseProto(tp); ok && p.WebSocket() {
			return false
		}
	}
	return !strings.HasSuffix(strings.ToLower(u.Host), ".invalid")
}

// bindingFor returns a binding whose contact is u (user, host and port;
// for an ".invalid" host, the host alone will do).
func (s *Server) bindingFor(u message.URI, now time.Time) *binding {
	var hostOnly *binding
	for user := range s.bindings {
		for _, b := range s.current(user, now) {
			c := b.contact.URI
			if !strings.EqualFold(c.Host, u.Host) {
				continue
			}
			if c.User == u.User && c.Port == u.Port {
				return b
			}
			if hostOnly == nil && !reachable(c) {
				hostOnly = b
			}
		}
	}
	return hostOnly
}

// remember notes the flow of a WebSocket client's ".invalid" contact host,
// so that in-dialog requests to a client that never registered find their
// way too.
func (s *Server) remember(req *message.Request, f transport.Flow) {
	if !f.Proto.Stream() {
		return
	}
	cs, _ := req.Header.Contacts()
	for _, c := range cs {
		if !c.Wildcard && !reachable(c.URI) {
			s.wsFlows[strings.ToLower(c.URI.Host)] = f
		}
	}
}
