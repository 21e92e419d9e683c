package transaction

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/sipua/sip/message"
)

// Transaction is a *Client or a *Server.
type Transaction interface {
	// Request returns the request of the transaction (a server
	// transaction's is nil once its final response has gone out).
	Request() *message.Request
	// Method returns the method of the transaction's request.
	Method() string
	// State returns its state.
	State() State
	// Deadline returns when its next timer fires, or the zero time.
	Deadline() time.Time

	tick(now time.Time, out []Action) []Action
	transportError(err error, out []Action) []Action
	slot() *entry
}

// entry is the Layer's bookkeeping inside each transaction.
type entry struct {
	dest  any
	tx    Transaction
	at    time.Time // the transaction's deadline when last scheduled
	index int32     // position in the deadline heap, -1 when absent
	live  bool
}

func (c *Client) tick(now time.Time, out []Action) []Action { return c.Tick(now, out) }
func (c *Client) transportError(err error, out []Action) []Action {
	return c.TransportError(err, out)
}
func (c *Client) slot() *entry { return &c.e }

func (s *Server) tick(now time.Time, out []Action) []Action { return s.Tick(now, out) }
func (s *Server) transportError(err error, out []Action) []Action {
	return s.TransportError(err, out)
}
func (s *Server) slot() *entry { return &s.e }

// Dest returns the destination given when the transaction was created.
func (c *Client) Dest() any { return c.e.dest }

// Source returns the source the request came from.
func (s *Server) Source() any { return s.e.dest }

type clientKey struct {
	branch, method string
}

// serverKey is what matches a request to a server transaction (RFC 3261
// §17.2.3): the top Via's branch and sent-by, and the method. A request
// of RFC 2543 (no branch with the magic cookie) is keyed by a branch made
// of the fields that identify it then, starting with a NUL, which no
// branch token holds, and no host.
type serverKey struct {
	branch string
	host   string
	port   int
	method string
}

// legacyMark starts the branch of an RFC 2543 request's key.
const legacyMark = "\x00"

// Callbacks connect a Layer to the transport below and the transaction
// user above. They are called synchronously from the Layer's methods, on
// the goroutine that drives it; they may call back into the Layer.
type Callbacks struct {
	// Send sends msg of transaction tx to dest (the destination given to
	// Layer.Request, or the source of a received request). An error is a
	// transport error. Send must not wait on the network: a send that
	// fails later (a queued write, a dial) is reported with
	// Layer.TransportError.
	Send func(tx Transaction, msg message.Message, dest any) error
	// Request delivers a request: one that created the server
	// transaction tx, an ACK for a 2xx that reached an INVITE server
	// transaction in the Accepted state (tx set, or nil once the Layer
	// retired it), or an ACK that matched no transaction (tx nil): both
	// ACKs belong to the dialog layer.
	Request func(tx *Server, req *message.Request, src any)
	// Response delivers a response of client transaction tx, or one that
	// matched no transaction (tx nil), which RFC 3261 §18.1.2 passes to
	// the core.
	Response func(tx *Client, resp *message.Response)
	// Failed reports that tx failed with an error wrapping ErrTimeout or
	// ErrTransport.
	Failed func(tx Transaction, err error)
	// Terminated, if set, reports that tx has ended. A server
	// transaction that the Layer retired (see Expired) is not reported
	// here.
	Terminated func(tx Transaction)
	// Expired, if set, reports the end of a retired server transaction:
	// one whose final response had gone out and that then only absorbed
	// retransmissions for 64·T1 (Timer J of a non-INVITE over an
	// unreliable transport, Timer L of an INVITE answered with a 2xx).
	// The Layer let go of its *Server when it entered that state and
	// kept a compact record, so what is left of it is its method and the
	// key given to Server.SetTUKey.
	Expired func(method string, tuKey [2]uint64)
	// Retransmit, if set, reports that a timer of tx sent its request or
	// response again.
	Retransmit func(tx Transaction)
}

// Layer holds the transactions of one user agent. It is driven by one
// goroutine: none of its methods may be called concurrently.
type Layer struct {
	cfg     Config
	cb      Callbacks
	clients map[clientKey]*Client
	servers serverTable
	// lingering holds the retired server transactions (linger.go).
	lingering lingerStore
	timers    deadlines
	// free holds action buffers for reuse: a buffer on the stack would
	// escape (the actions go through interface methods), and callbacks
	// may re-enter the Layer, so each call takes its own.
	free [][]Action
	// peak is the most transactions the maps held since they were made:
	// a Go map keeps the room it grew to, so maps that empty after a
	// burst are made anew (see shrinkAfter).
	peakClients, peakServers int
}

// shrinkAfter is the peak from which a map (or the deadline heap) that
// empties is replaced by a new one, giving back the room of a burst: a
// transaction lives 32 s after its call, so 1000 calls/s leave 64 000
// entries' room behind.
const shrinkAfter = 1024

func (l *Layer) getBuf() []Action {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]Action, 0, 4)
}

// putBuf returns b, emptied so that it holds no message alive.
func (l *Layer) putBuf(b []Action) {
	clear(b[:cap(b)])
	if len(l.free) < 8 {
		l.free = append(l.free, b[:0])
	}
}

// NewLayer returns an empty Layer.
func NewLayer(cfg Config, cb Callbacks) *Layer {
	return &Layer{
		cfg:     cfg.norm(),
		cb:      cb,
		clients: make(map[clientKey]*Client),
		servers: newServerTable(maphash.MakeSeed()),
	}
}

// Len returns the number of client and server transactions alive.
// A retired server transaction counts until it expires.
func (l *Layer) Len() (clients, servers int) {
	return len(l.clients), l.servers.n + l.lingering.len()
}

// NextDeadline returns when Tick must next be called; ok is false when no
// timer runs.
func (l *Layer) NextDeadline() (t time.Time, ok bool) {
	t, ok = l.lingering.next()
	if len(l.timers) > 0 && (!ok || l.timers[0].at.Before(t)) {
		return l.timers[0].at, true
	}
	return t, ok
}

// ErrBadRequest reports a request that cannot start a client transaction.
var ErrBadRequest = errors.New("transaction: request cannot start a transaction")

// Request starts a client transaction for req (not an ACK: an ACK to a 2xx
// is sent by the dialog layer directly) and sends it to dest. req must
// carry a top Via whose branch starts with the magic cookie. If the first
// send fails, the transaction is dropped and the error, wrapping
// ErrTransport, is returned; later failures go to Callbacks.Failed.
func (l *Layer) Request(req *message.Request, dest any, reliable bool, now time.Time) (*Client, error) {
	if req.Method == "ACK" {
		return nil, fmt.Errorf("%w: ACK", ErrBadRequest)
	}
	via, err := req.Header.TopVia()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	b := via.Branch()
	if !strings.HasPrefix(b, message.MagicCookie) || len(b) == len(message.MagicCookie) {
		return nil, fmt.Errorf("%w: branch %q lacks the magic cookie", ErrBadRequest, b)
	}
	key := clientKey{branch: b, method: req.Method}
	if _, dup := l.clients[key]; dup {
		return nil, fmt.Errorf("%w: branch %q in use", ErrBadRequest, b)
	}
	var buf [4]Action
	c, _ := NewClient(req, reliable, l.cfg, now, buf[:0])
	c.e = entry{dest: dest, tx: c, index: -1}
	c.key = key
	if err := l.cb.Send(c, req, dest); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	c.e = entry{dest: dest, tx: c, index: -1, live: true}
	l.clients[key] = c
	l.peakClients = max(l.peakClients, len(l.clients))
	l.reschedule(c)
	return c, nil
}

// TransportError reports that a send of tx failed after Send returned
// (a queued write, a connection or look-up that failed): the transaction
// fails as if Send had returned err. Nothing happens if tx has ended.
func (l *Layer) TransportError(tx Transaction, err error, now time.Time) {
	if tx == nil || !tx.slot().live {
		return
	}
	buf := l.getBuf()
	defer l.putBuf(buf)
	l.run(tx, tx.transportError(err, buf), now)
}

// SetReliable tells a client transaction whose transport was not known
// when it started (its destination was still being resolved) whether it
// is reliable after all: retransmissions start or stop accordingly.
func (l *Layer) SetReliable(c *Client, reliable bool, now time.Time) {
	if c == nil || !c.e.live || c.reliable == reliable {
		return
	}
	c.setReliable(reliable, now)
	l.reschedule(c)
}

// Respond sends resp through server transaction tx.
func (l *Layer) Respond(tx *Server, resp *message.Response, now time.Time) error {
	buf := l.getBuf()
	defer l.putBuf(buf)
	out, err := tx.Respond(resp, now, buf)
	if err != nil {
		return err
	}
	l.run(tx, out, now)
	return nil
}

// Receive takes a message from the transport: src is where it came from
// (responses to a request go there), reliable whether its transport is.
// Messages whose top Via or CSeq cannot be read are dropped: the transport
// validates messages before.
func (l *Layer) Receive(msg message.Message, src any, reliable bool, now time.Time) {
	buf := l.getBuf()
	defer l.putBuf(buf)
	switch m := msg.(type) {
	case *message.Response:
		via, err := m.Header.TopVia()
		if err != nil {
			return
		}
		cseq, err := m.Header.CSeq()
		if err != nil {
			return
		}
		c, ok := l.clients[clientKey{branch: via.Branch(), method: cseq.Method}]
		if !ok {
			if l.cb.Response != nil {
				l.cb.Response(nil, m)
			}
			return
		}
		l.run(c, c.Receive(m, now, buf), now)
	case *message.Request:
		key, ok := l.serverKey(m)
		if !ok {
			return
		}
		h := l.servers.hash(key)
		if s := l.servers.getHashed(key, h); s != nil {
			l.run(s, s.Receive(m, now, buf), now)
			return
		}
		// An ACK that matches a retired INVITE goes up without a
		// transaction, as one that matches nothing does: no look-up.
		if m.Method != "ACK" {
			if r := l.lingering.get(key, h); r != nil {
				l.absorb(r, m, src)
				return
			}
		}
		if m.Method == "ACK" {
			if l.cb.Request != nil {
				l.cb.Request(nil, m, src)
			}
			return
		}
		s, out := newServer(m, reliable, &l.cfg, now, buf)
		key = key.own(s.keyRoom[:])
		s.e = entry{dest: src, tx: s, index: -1, live: true}
		s.key = key
		l.servers.addHashed(s, h)
		l.peakServers = max(l.peakServers, l.servers.n)
		l.run(s, out, now)
	}
}

// absorb handles a request (not an ACK) that matched retired transaction
// r: a retransmission of a non-INVITE request gets the final response
// again, sent to where the retransmission came from; a retransmitted
// INVITE is absorbed.
func (l *Layer) absorb(r *retired, req *message.Request, src any) {
	switch {
	case !r.invite:
		m, err := unlimited.Parse(l.lingering.response(r))
		if err != nil {
			return
		}
		if err := l.cb.Send(nil, m, src); err != nil {
			// Nothing to fail: the transaction has answered. The
			// peer sends its request again.
			return
		}
	}
}

// retire lets s go and keeps a record of it instead (linger.go) if it only
// absorbs retransmissions until Timer J or L, and reports whether it did.
func (l *Layer) retire(s *Server) bool {
	var resp []byte
	switch {
	case s.state == Accepted:
	case s.state == Completed && !s.invite && s.wire != nil:
		resp = s.wire
	default:
		return false
	}
	if s.retrans.at != (time.Time{}) || s.phase.at.IsZero() || !fits(s.key, resp) {
		return false
	}
	l.lingering.add(s.key, l.servers.hash(s.key), s.phase.at, s.tuKey, s.invite, resp)
	l.remove(s)
	return true
}

// Matches reports whether req belongs to a server transaction alive in
// the Layer (a retransmission, or an ACK to a non-2xx final response),
// retired ones included.
func (l *Layer) Matches(req *message.Request) bool {
	key, ok := l.serverKey(req)
	if !ok {
		return false
	}
	h := l.servers.hash(key)
	return l.servers.getHashed(key, h) != nil || l.lingering.get(key, h) != nil
}

// MatchCancel returns the INVITE server transaction that a CANCEL
// targets (RFC 3261 §9.2). found reports whether there is one; s is nil
// when it has sent a 2xx and the Layer retired it (there is nothing left
// to cancel, but the CANCEL matched and gets a 200).
func (l *Layer) MatchCancel(cancel *message.Request) (s *Server, found bool) {
	key, ok := l.serverKey(cancel)
	if !ok {
		return nil, false
	}
	key.method = "INVITE"
	h := l.servers.hash(key)
	if s := l.servers.getHashed(key, h); s != nil && s.invite {
		return s, true
	}
	if r := l.lingering.get(key, h); r != nil && r.invite {
		return nil, true
	}
	return nil, false
}

// own returns k with strings of its own: the branch and host of a key
// taken from a request point into the request's buffer, and a key in the
// Layer's map lives as long as the transaction (up to 64·T1 after its
// final response), which would keep the whole request alive.
// room, when large enough, holds the copy (the transaction's own array:
// no allocation for the usual branch and host).
func (k serverKey) own(room []byte) serverKey {
	k.method = methodName(k.method)
	if strings.HasPrefix(k.branch, legacyMark) {
		return k // built by concatenation: its own already
	}
	b := room[:0]
	if n := len(k.branch) + len(k.host); n > cap(b) {
		b = make([]byte, 0, n)
	}
	b = append(b, k.branch...)
	b = append(b, k.host...)
	s := unsafe.String(unsafe.SliceData(b), len(b))
	k.branch, k.host = s[:len(k.branch)], s[len(k.branch):]
	return k
}

func (l *Layer) serverKey(req *message.Request) (serverKey, bool) {
	via, err := req.Header.TopVia()
	if err != nil {
		return serverKey{}, false
	}
	method := req.Method
	if method == "ACK" {
		method = "INVITE"
	}
	b := via.Branch()
	if strings.HasPrefix(b, message.MagicCookie) && len(b) > len(message.MagicCookie) {
		return serverKey{branch: b, host: strings.ToLower(via.Host), port: via.Port, method: method}, true
	}
	// RFC 2543 (§17.2.3): Request-URI, From tag, Call-ID, CSeq number and
	// top Via identify the transaction. The To tag is left out, so that
	// the ACK, which carries the tag of the response, matches its INVITE.
	cseq, err := req.Header.CSeq()
	if err != nil {
		return serverKey{}, false
	}
	uri := req.URI.String()
	legacy := legacyMark + uri + "\x00" + req.Header.FromTag() + "\x00" + req.Header.CallID() + "\x00" +
		strconv.FormatUint(uint64(cseq.Seq), 10) + "\x00" + via.String()
	return serverKey{method: method, branch: legacy}, true
}

// Tick fires every timer due at now.
func (l *Layer) Tick(now time.Time) {
	l.lingering.expire(now, l.cb.Expired)
	for len(l.timers) > 0 {
		e := l.timers[0]
		if e.at.After(now) {
			return
		}
		tx := e.tx
		buf := l.getBuf()
		out := tx.tick(now, buf)
		if l.cb.Retransmit != nil {
			for _, a := range out {
				// The 100 Trying sent by the 200 ms timer is no
				// retransmission (RFC 3261 §17.2.1).
				if r, ok := a.Msg.(*message.Response); a.Kind == Send && (!ok || r.StatusCode != 100) {
					l.cb.Retransmit(tx)
				}
			}
		}
		l.run(tx, out, now)
		l.putBuf(buf)
	}
}

// run carries out the actions of tx.
func (l *Layer) run(tx Transaction, out []Action, now time.Time) {
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch a.Kind {
		case Send:
			if err := l.cb.Send(tx, a.Msg, tx.slot().dest); err != nil {
				out = tx.transportError(err, out)
			}
		case PassUp:
			switch t := tx.(type) {
			case *Client:
				if l.cb.Response != nil {
					l.cb.Response(t, a.Msg.(*message.Response))
				}
			case *Server:
				if l.cb.Request != nil {
					l.cb.Request(t, a.Msg.(*message.Request), t.e.dest)
				}
			}
		case Fail:
			if l.cb.Failed != nil {
				l.cb.Failed(tx, a.Err)
			}
		case Terminate:
			l.remove(tx)
			if l.cb.Terminated != nil {
				l.cb.Terminated(tx)
			}
		}
	}
	if tx.slot().live {
		if s, ok := tx.(*Server); ok && l.retire(s) {
			return
		}
		l.reschedule(tx)
	}
}

// Unanswered calls f for each server transaction that has sent no final
// response yet (Trying or Proceeding). f may respond.
func (l *Layer) Unanswered(f func(*Server)) {
	var list []*Server
	l.servers.each(func(s *Server) {
		if st := s.State(); st == Trying || st == Proceeding {
			list = append(list, s)
		}
	})
	for _, s := range list {
		f(s)
	}
}

// Abandon ends tx at once, without sending anything more or reporting a
// failure: its owner is gone (a UserAgent that left a shared stack).
// Terminated is called. Nothing happens if tx has ended.
func (l *Layer) Abandon(tx Transaction) {
	if tx == nil || !tx.slot().live {
		return
	}
	l.remove(tx)
	if l.cb.Terminated != nil {
		l.cb.Terminated(tx)
	}
}

func (l *Layer) remove(tx Transaction) {
	e := tx.slot()
	if !e.live {
		return
	}
	e.live = false
	switch t := tx.(type) {
	case *Client:
		if l.clients[t.key] == t {
			delete(l.clients, t.key)
			if len(l.clients) == 0 && l.peakClients >= shrinkAfter {
				l.clients, l.peakClients = make(map[clientKey]*Client), 0
			}
		}
	case *Server:
		if l.servers.remove(t) && l.servers.n == 0 && l.peakServers >= shrinkAfter {
			// The seed stays: retired records are indexed by it.
			t := newServerTable(l.servers.seed)
			t.hashOf = l.servers.hashOf
			l.servers, l.peakServers = t, 0
		}
	}
	if e.index >= 0 {
		l.unschedule(e)
	}
}

// unschedule takes e out of the deadline heap.
func (l *Layer) unschedule(e *entry) {
	heap.Remove(&l.timers, int(e.index))
	if len(l.timers) == 0 && cap(l.timers) >= shrinkAfter {
		l.timers = nil
	}
}

// reschedule puts tx in the deadline heap at its current deadline, moves
// it there, or takes it out when no timer of it runs. Every input to a
// transaction goes through the Layer, which calls this afterwards, so the
// deadline cached in the heap entry is always the machine's.
func (l *Layer) reschedule(tx Transaction) {
	e := tx.slot()
	at := tx.Deadline()
	switch {
	case at.IsZero():
		if e.index >= 0 {
			l.unschedule(e)
		}
	case e.index >= 0:
		if !at.Equal(e.at) {
			e.at = at
			heap.Fix(&l.timers, int(e.index))
		}
	default:
		e.at = at
		heap.Push(&l.timers, e)
	}
}

// deadlines is a min-heap of transaction entries by their cached
// deadline: comparisons read a field instead of asking each machine for
// the earliest of its timers.
type deadlines []*entry

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].index = int32(i)
	d[j].index = int32(j)
}
func (d *deadlines) Push(x any) {
	e := x.(*entry)
	e.index = int32(len(*d))
	*d = append(*d, e)
}
func (d *deadlines) Pop() any {
	old := *d
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*d = old[:len(old)-1]
	e.index = -1
	return e
}
