package transaction

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/sipua/sip/message"
)

// Server is an INVITE or non-INVITE server transaction (RFC 3261 §17.2,
// RFC 6026 §7.1). It is not safe for concurrent use.
type Server struct {
	req  *message.Request  // nil once a final response has gone out
	last *message.Response // the last response sent
	// wire is the final response of a non-INVITE transaction that lingers
	// (Timer J), as sent, in place of last: bytes with no pointer in them,
	// parsed again only when a retransmitted request asks for it.
	wire     []byte
	cfg      *Config // normalized; the Layer's, shared
	invite   bool
	reliable bool
	state    State

	retrans timer // G
	// phase is the state's one timer besides G: 100 Trying if the TU is
	// silent (Proceeding, INVITE), H (Completed, INVITE), I (Confirmed),
	// J (Completed, non-INVITE) or L (Accepted).
	phase deadline

	e     entry
	key   serverKey // in the Layer's table; its method is the request's
	next  *Server   // the next server whose key has the same hash
	tuKey [2]uint64 // the transaction user's (SetTUKey)
	// keyRoom holds the strings of the transaction's key in the Layer's
	// map when they fit (serverKey.own).
	keyRoom [64]byte
}

// NewServer creates the server transaction for a new request and passes
// the request up. reliable tells whether it came over a reliable transport.
func NewServer(req *message.Request, reliable bool, cfg Config, now time.Time, out []Action) (*Server, []Action) {
	cfg = cfg.norm()
	return newServer(req, reliable, &cfg, now, out)
}

// newServer is NewServer with a normalized Config that outlives the
// transaction (the Layer's): a Server lingers up to 64·T1 after its call,
// so what it holds is counted per call a server takes in 32 s.
func newServer(req *message.Request, reliable bool, cfg *Config, now time.Time, out []Action) (*Server, []Action) {
	s := &Server{req: req, key: serverKey{method: methodName(req.Method)}, cfg: cfg, invite: req.Method == "INVITE", reliable: reliable, e: entry{index: -1}}
	if s.invite {
		s.state = Proceeding
		s.phase.set(now, s.cfg.TryingDelay)
	} else {
		s.state = Trying
	}
	return s, append(out, Action{Kind: PassUp, Msg: req})
}

// Request returns the request that created the transaction, or nil once
// the transaction has sent its final response: a transaction that lingers
// (Timers J, L, I, up to 64·T1) to absorb retransmissions keeps neither
// the request nor memory it shares, so that a finished call holds little.
func (s *Server) Request() *message.Request { return s.req }

// Method returns the method of the transaction's request.
func (s *Server) Method() string { return s.key.method }

// methodName returns m as a string of its own: the methods the library
// knows as constants, any other as a copy, so that it shares no memory
// with the message it was read from.
func methodName(m string) string {
	switch m {
	case "INVITE":
		return "INVITE"
	case "ACK":
		return "ACK"
	case "BYE":
		return "BYE"
	case "CANCEL":
		return "CANCEL"
	case "OPTIONS":
		return "OPTIONS"
	case "REGISTER":
		return "REGISTER"
	case "MESSAGE":
		return "MESSAGE"
	case "INFO":
		return "INFO"
	case "UPDATE":
		return "UPDATE"
	case "PRACK":
		return "PRACK"
	case "SUBSCRIBE":
		return "SUBSCRIBE"
	case "NOTIFY":
		return "NOTIFY"
	case "REFER":
		return "REFER"
	case "PUBLISH":
		return "PUBLISH"
	}
	return strings.Clone(m)
}

// SetTUKey stores a key of the transaction user's own with the
// transaction (the core's merged-request key), so that the user needs no
// map from transactions to keys; the transaction never reads it.
func (s *Server) SetTUKey(k [2]uint64) { s.tuKey = k }

// TUKey returns the key given to SetTUKey, or zero.
func (s *Server) TUKey() [2]uint64 { return s.tuKey }

// State returns the current state.
func (s *Server) State() State { return s.state }

// Invite reports whether this is an INVITE server transaction.
func (s *Server) Invite() bool { return s.invite }

// Reliable reports whether the transport is reliable.
func (s *Server) Reliable() bool { return s.reliable }

// LastResponse returns the last response sent, or nil; nil as well once
// a 2xx to INVITE went out (Accepted keeps none).
func (s *Server) LastResponse() *message.Response {
	if s.last == nil && s.wire != nil {
		return s.resent()
	}
	return s.last
}

// unlimited parses a response this transaction wrote itself.
var unlimited = message.Limits{MaxMessageSize: -1, MaxHeaders: -1, MaxLineLength: -1, MaxBodySize: -1}

// resent returns the final response kept in wire, parsed again, or nil.
func (s *Server) resent() *message.Response {
	m, err := unlimited.Parse(s.wire)
	if err != nil {
		return nil
	}
	r, _ := m.(*message.Response)
	return r
}

// Deadline returns when Tick must next be called, or the zero time.
func (s *Server) Deadline() time.Time {
	return earliest(s.retrans.at, s.phase.at)
}

func (s *Server) terminate(out []Action) []Action {
	s.state = Terminated
	s.req = nil
	s.last = nil
	s.wire = nil
	s.retrans.stop()
	s.phase.stop()
	return append(out, Action{Kind: Terminate})
}

// Receive feeds a request matched to this transaction: a retransmission
// of its request, or for INVITE an ACK.
func (s *Server) Receive(req *message.Request, now time.Time, out []Action) []Action {
	if req.Method == "ACK" {
		if !s.invite {
			return out
		}
		switch s.state {
		case Completed:
			s.state = Confirmed
			s.last = nil // Confirmed absorbs retransmissions
			s.retrans.stop()
			s.phase.stop()
			if s.reliable {
				return s.terminate(out)
			}
			s.phase.set(now, s.cfg.T4) // Timer I
		case Accepted:
			// RFC 6026: the ACK to a 2xx goes to the TU.
			return append(out, Action{Kind: PassUp, Msg: req})
		}
		return out
	}
	// A retransmission of the request.
	switch s.state {
	case Proceeding, Completed:
		if s.last != nil {
			return append(out, Action{Kind: Send, Msg: s.last})
		}
		if s.wire != nil {
			if r := s.resent(); r != nil {
				return append(out, Action{Kind: Send, Msg: r})
			}
		}
	}
	// Trying (non-INVITE, no response yet), Confirmed, Accepted:
	// absorbed.
	return out
}

// Respond sends a response of the transaction user. It returns an error
// wrapping ErrTerminated when the transaction can take no more responses
// (a final one was already sent, other than a 2xx to INVITE), and the
// response is then not sent.
func (s *Server) Respond(resp *message.Response, now time.Time, out []Action) ([]Action, error) {
	code := resp.StatusCode
	switch s.state {
	case Trying, Proceeding:
	case Accepted:
		if code >= 200 && code < 300 {
			// The TU retransmits its 2xx through here; the transaction
			// keeps none of it (see below).
			return append(out, Action{Kind: Send, Msg: resp}), nil
		}
		return out, fmt.Errorf("%w: %d after a 2xx", ErrTerminated, code)
	default:
		return out, fmt.Errorf("%w: %d in state %v", ErrTerminated, code, s.state)
	}
	s.phase.stop() // the 100 Trying timer
	s.last = resp
	out = append(out, Action{Kind: Send, Msg: resp})
	if code < 200 {
		s.state = Proceeding
		return out, nil
	}
	// The final response: from here on the transaction only absorbs
	// retransmissions (and for INVITE takes the ACK), which needs neither
	// the request nor a response that shares its memory (a response built
	// from a request points into the request's buffer).
	s.req = nil
	if s.invite {
		if code < 300 {
			// In Accepted a retransmitted INVITE is absorbed and the TU
			// retransmits its 2xx itself (RFC 6026 §7.1): the 2xx is not
			// kept for the 64*T1 of Timer L.
			s.last = nil
			s.state = Accepted
			s.phase.set(now, 64*s.cfg.T1) // Timer L
			return out, nil
		}
		s.state = Completed
		if !s.reliable {
			s.last = resp.Detached()
			s.retrans.set(now, s.cfg.T1) // Timer G
		}
		s.phase.set(now, 64*s.cfg.T1) // Timer H
		return out, nil
	}
	s.state = Completed
	if s.reliable {
		return s.terminate(out), nil
	}
	var room [1024]byte
	s.wire = bytes.Clone(resp.AppendTo(room[:0]))
	s.last = nil
	s.phase.set(now, 64*s.cfg.T1) // Timer J
	return out, nil
}

// Tick fires the timers that are due at now.
func (s *Server) Tick(now time.Time, out []Action) []Action {
	if s.state == Terminated {
		return out
	}
	if s.phase.due(now) {
		switch {
		case s.state == Proceeding:
			// The TU has been silent for TryingDelay.
			s.phase.stop()
			if s.last == nil {
				s.last = message.NewResponse(s.req, 100, "", "")
				out = append(out, Action{Kind: Send, Msg: s.last})
			}
		case s.state == Completed && s.invite:
			// Timer H: the ACK never came.
			out = append(out, Action{Kind: Fail, Err: fmt.Errorf("%w: no ACK after %v", ErrTimeout, 64*s.cfg.T1)})
			return s.terminate(out)
		default:
			// Timer I, J or L: done absorbing retransmissions.
			return s.terminate(out)
		}
	}
	if s.retrans.due(now) {
		// Timer G: resend the final response, doubling up to T2.
		out = append(out, Action{Kind: Send, Msg: s.last})
		s.retrans.set(now, min(2*s.retrans.interval, s.cfg.T2))
	}
	return out
}

// TransportError reports that sending a response failed: the transaction
// ends and the TU is told (RFC 3261 §17.2.4 leaves retrying other
// destinations of §18.2.2 to the transport).
func (s *Server) TransportError(err error, out []Action) []Action {
	if s.state == Terminated {
		return out
	}
	out = append(out, Action{Kind: Fail, Err: fmt.Errorf("%w: %w", ErrTransport, err)})
	return s.terminate(out)
}
