package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sipua/sip/message"
)

// ErrTimeout is wrapped by the error Play returns when the user agent
// under test does not send an expected message in time.
var ErrTimeout = errors.New("replay: timeout")

// DefaultTimeout is how long Play waits for each expected message when
// Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Options configures Play.
type Options struct {
	// Peer is the address of the user agent under test (side B) in this
	// run. When zero it is learnt from the first datagram received, and
	// the trace must then start with a message from side B.
	Peer netip.AddrPort
	// Timeout bounds the wait for each expected message of side B.
	// Default: DefaultTimeout.
	Timeout time.Duration
	// Linger is how long Play keeps listening after the last message of
	// the trace; anything but a retransmission then fails the replay.
	// Zero: Play returns at once.
	Linger time.Duration
	// Passwords maps user names to passwords. The digest response of an
	// Authorization or Proxy-Authorization sent by side B is then
	// verified; without a password it is only checked to be well formed
	// (every parameter as recorded, a response of the right length).
	Passwords map[string]string
	// CompareHeaders are header fields whose values are compared in
	// addition to DefaultCompared; IgnoreHeaders are left out of every
	// comparison, also of the check that side B sends the same header
	// fields as recorded.
	CompareHeaders, IgnoreHeaders []string
	// Map holds values known to differ between the recording and this
	// run, recorded → live (for example a domain name). The rest is
	// learnt as the replay goes.
	Map map[string]string
	// OnStep, when set, is called after each message of the trace has
	// been sent (side A) or received and matched (side B), on Play's
	// goroutine: it may make the user agent under test act (say, hang
	// up) before the next message.
	OnStep func(Step)
	// Logf, when set, receives one line per message (t.Logf fits).
	Logf func(format string, args ...any)
}

// Step is one message of the trace as it went in this run.
type Step struct {
	// Index is the message's index in Trace.Messages.
	Index int
	// From is the side that sent it.
	From Side
	// Data is the datagram as sent (side A, rewritten with this run's
	// values) or as received (side B).
	Data []byte
}

// Result is what Play observed.
type Result struct {
	// Trace is this run's exchange, every datagram sent and received
	// (retransmissions included), with this run's addresses and times:
	// log it, or write it with WriteTrace, to see what happened.
	Trace *Trace
	// Retransmissions counts datagrams from side B that repeated one it
	// had already sent, and were ignored.
	Retransmissions int
	// Mapping holds the values learnt that differ from the recording,
	// recorded → live: Call-IDs, tags, branches, addresses, Contact
	// users.
	Mapping map[string]string
	// Skipped lists the indexes of the trace's messages that were not
	// played: keep-alives, and retransmissions (a datagram equal to an
	// earlier one from the same side).
	Skipped []int
}

// MismatchError reports a message of the user agent under test that is not
// the one the trace expects.
type MismatchError struct {
	// Index is the index in Trace.Messages of the message expected, or
	// -1 for a message that came after the end of the trace.
	Index int
	// Expected describes the message expected, e.g. "B->A REGISTER".
	Expected string
	// Problems lists the differences, one per line.
	Problems []string
	// Want is the recorded message rewritten with this run's values (nil
	// after the end of the trace); Got the datagram received.
	Want, Got []byte
}

// Error returns the differences and a line diff of the two messages.
func (e *MismatchError) Error() string {
	var b strings.Builder
	if e.Index < 0 {
		b.WriteString("replay: unexpected message after the end of the trace")
	} else {
		fmt.Fprintf(&b, "replay: message %d (%s) does not match", e.Index, e.Expected)
	}
	for _, p := range e.Problems {
		b.WriteString("\n  * " + p)
	}
	if e.Want != nil {
		b.WriteString("\n--- want (the trace, with this run's values)\n+++ got\n")
		b.WriteString(strings.Join(lineDiff(messageLines(e.Want), messageLines(e.Got)), "\n"))
	} else {
		b.WriteString("\n+++ got\n" + strings.Join(messageLines(e.Got), "\n"))
	}
	return b.String()
}

// step is a message of the trace to play.
type step struct {
	index int
	msg   Message
	rec   message.Message
}

type packet struct {
	data []byte
	from netip.AddrPort
	err  error
}

// player is the state of one Play.
type player struct {
	conn   net.PacketConn
	tr     *Trace
	opts   Options
	m      *mapper
	c      *comparer
	peer   netip.AddrPort
	liveA  netip.AddrPort
	start  time.Time
	res    *Result
	seen   map[string]bool // retransmission keys of what B sent
	pkts   chan packet
	stop   chan struct{}
	done   chan struct{}
	last   string // the last message sent or matched, for timeout errors
	remain []int  // the expected messages not matched yet, for timeout errors
}

// Play plays side A of tr over conn to the user agent under test (side B),
// and checks that what the user agent sends is what side B sent in tr.
//
// Play sends each message of side A when every message of side B before
// it has arrived (never on the recorded times), with the values of this
// run: tags, branches, Call-IDs, CSeq numbers, Contact users and
// addresses that side B chose differently from the recording are learnt
// from B's messages as they arrive and written into A's. Each message
// from B must arrive within Options.Timeout; consecutive messages of B may
// arrive in any order. A message from B is compared with the recorded one
// rewritten with this run's values: the same method or status, Request-URI,
// the same header fields, the values of DefaultCompared (Via, From, To,
// Call-ID, CSeq, Contact, Route …), the presence of tags and body,
// credentials (see Options.Passwords), the media lines of an SDP body.
// Retransmissions from B are ignored, keep-alives too.
//
// conn is side A's socket: a siptest.Network's PacketConn for a replay
// on the in-memory network (inside testing/synctest on virtual time), or
// a UDP socket bound to a specific address (its address replaces side A's
// recorded one in the messages; a wildcard address cannot). Play does not
// close it; it stops reading from it before returning.
//
// The error is a *MismatchError for a wrong message, wraps ErrTimeout for
// a missing one, or is ctx's error. The Result is never nil: its Trace
// shows what happened up to the error.
func Play(ctx context.Context, conn net.PacketConn, tr *Trace, opts Options) (*Result, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	p := &player{
		conn:  conn,
		tr:    tr,
		opts:  opts,
		m:     newMapper(),
		c:     newComparer(opts),
		liveA: addrPort(conn.LocalAddr()),
		start: time.Now(),
		seen:  map[string]bool{},
		pkts:  make(chan packet, 64),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	p.res = &Result{Trace: &Trace{
		Title: "replay of: " + tr.Title,
		A:     Party{Name: tr.A.Name, Addr: p.liveA, Description: "played by siptest/replay"},
		B:     Party{Name: tr.B.Name, Description: tr.B.Description},
	}}
	go p.read()
	defer p.close()
	err := p.run(ctx)
	p.res.Mapping = p.m.mapping()
	return p.res, err
}

// read passes the datagrams of conn to the player until it stops.
func (p *player) read() {
	defer close(p.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		pkt := packet{err: err}
		if err == nil {
			pkt.data, pkt.from = bytes.Clone(buf[:n]), addrPort(from)
		}
		select {
		case p.pkts <- pkt:
		case <-p.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// close stops the reader and leaves conn without a read deadline.
func (p *player) close() {
	close(p.stop)
	_ = p.conn.SetReadDeadline(time.Unix(1, 0))
	<-p.done
	_ = p.conn.SetReadDeadline(time.Time{})
}

func (p *player) logf(format string, args ...any) {
	if p.opts.Logf != nil {
		p.opts.Logf(format, args...)
	}
}

// steps returns the messages to play: all but keep-alives and
// retransmissions.
func (p *player) steps() ([]step, error) {
	var out []step
	for i, m := range p.tr.Messages {
		if isKeepAlive(m.Data) || slices.ContainsFunc(p.tr.Messages[:i], func(o Message) bool {
			return o.From == m.From && bytes.Equal(o.Data, m.Data)
		}) {
			p.res.Skipped = append(p.res.Skipped, i)
			continue
		}
		rec, err := message.Parse(m.Data)
		if err != nil {
			return nil, fmt.Errorf("replay: message %d of the trace (%v->%v %s) does not parse: %w", i, m.From, m.To(), m.Summary(), err)
		}
		out = append(out, step{index: i, msg: m, rec: rec})
	}
	return out, nil
}

func (p *player) run(ctx context.Context) error {
	steps, err := p.steps()
	if err != nil {
		return err
	}
	if p.tr.A.Addr.IsValid() && p.liveA.IsValid() && !p.liveA.Addr().IsUnspecified() {
		if err := p.m.learn("side A's address", p.tr.A.Addr.String(), p.liveA.String()); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.opts.Map)) {
		if err := p.m.learn("Options.Map", k, p.opts.Map[k]); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	if p.opts.Peer.IsValid() {
		if err := p.setPeer(unmap(p.opts.Peer)); err != nil {
			return err
		}
	}
	for i := 0; i < len(steps); {
		if steps[i].msg.From == SideA {
			if err := p.send(steps[i]); err != nil {
				return err
			}
			i++
			continue
		}
		j := i
		for j < len(steps) && steps[j].msg.From == SideB {
			j++
		}
		if err := p.expect(ctx, steps[i:j]); err != nil {
			return err
		}
		i = j
	}
	return p.linger(ctx)
}

// setPeer fixes side B's address in this run.
func (p *player) setPeer(a netip.AddrPort) error {
	p.peer = a
	p.res.Trace.B.Addr = a
	p.m.recB, p.m.liveB = p.tr.B.Addr, a
	if p.tr.B.Addr.IsValid() {
		if err := p.m.learn("side B's address", p.tr.B.Addr.String(), a.String()); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}

// send sends a message of side A with this run's values.
func (p *player) send(s step) error {
	if !p.peer.IsValid() {
		return fmt.Errorf("replay: message %d (%v->%v %s) is to be sent, but the user agent's address is unknown: set Options.Peer",
			s.index, s.msg.From, s.msg.To(), s.msg.Summary())
	}
	p.m.register(s.rec)
	data := p.m.apply(s.msg.Data, SideA)
	if _, err := p.conn.WriteTo(data, net.UDPAddrFromAddrPort(p.peer)); err != nil {
		return fmt.Errorf("replay: send message %d (%s): %w", s.index, s.msg.Summary(), err)
	}
	p.addLive(SideA, data, fmt.Sprintf("message %d of the trace", s.index))
	p.last = fmt.Sprintf("message %d (A->B %s) was sent", s.index, s.msg.Summary())
	p.logf("replay: %d A->B %s (sent)", s.index, s.msg.Summary())
	if p.opts.OnStep != nil {
		p.opts.OnStep(Step{Index: s.index, From: SideA, Data: data})
	}
	return nil
}

func (p *player) addLive(from Side, data []byte, note string) {
	p.res.Trace.Messages = append(p.res.Trace.Messages, Message{
		At: time.Since(p.start).Round(time.Microsecond), From: from, Data: data, Note: note,
	})
}

// expect waits for a run of consecutive messages of side B, in any order.
func (p *player) expect(ctx context.Context, group []step) error {
	matched := make([]bool, len(group))
	for left := len(group); left > 0; left-- {
		p.remain = p.remain[:0]
		for k, s := range group {
			if !matched[k] {
				p.remain = append(p.remain, s.index)
			}
		}
		first := group[slices.Index(matched, false)]
		pkt, got, err := p.next(ctx, first)
		if err != nil {
			return err
		}
		k, err := p.match(group, matched, pkt, got)
		if err != nil {
			return err
		}
		matched[k] = true
		s := group[k]
		p.res.Trace.Messages[len(p.res.Trace.Messages)-1].Note = fmt.Sprintf("message %d of the trace", s.index)
		p.last = fmt.Sprintf("message %d (B->A %s) arrived", s.index, s.msg.Summary())
		p.logf("replay: %d B->A %s (matched)", s.index, s.msg.Summary())
		if p.opts.OnStep != nil {
			p.opts.OnStep(Step{Index: s.index, From: SideB, Data: pkt})
		}
	}
	return nil
}

// match finds the message of the group that got is, learns its values and
// checks it.
func (p *player) match(group []step, matched []bool, data []byte, got message.Message) (int, error) {
	var firstErr *MismatchError
	for k, s := range group {
		if matched[k] || shape(s.rec) != shape(got) {
			continue
		}
		trial := p.m.clone()
		problems := trial.learnFrom(s.rec, got)
		want := trial.apply(s.msg.Data, SideB)
		wantMsg, err := message.Parse(want)
		if err != nil {
			problems = append(problems, "the trace's message, rewritten, does not parse: "+err.Error())
		} else {
			problems = append(problems, p.c.compare(wantMsg, got)...)
		}
		if len(problems) == 0 {
			p.m = trial
			return k, nil
		}
		if firstErr == nil {
			firstErr = &MismatchError{Index: s.index, Expected: "B->A " + s.msg.Summary(), Problems: problems,
				Want: alignCredentials(want, got, problems), Got: data}
		}
	}
	if firstErr != nil {
		return 0, firstErr
	}
	s := group[slices.Index(matched, false)]
	return 0, &MismatchError{Index: s.index, Expected: "B->A " + s.msg.Summary(),
		Problems: []string{fmt.Sprintf("want %s, got %s", describe(s.rec), describe(got))},
		Want:     p.m.apply(s.msg.Data, SideB), Got: data}
}

// alignCredentials writes got's cnonce and response into the credentials
// of want, for the diff of a MismatchError, unless the problems are about
// credentials: fresh values are no difference worth showing.
func alignCredentials(want []byte, got message.Message, problems []string) []byte {
	for _, p := range problems {
		if strings.HasPrefix(p, "Authorization") || strings.HasPrefix(p, "Proxy-Authorization") {
			return want
		}
	}
	wm, err := message.Parse(want)
	if err != nil {
		return want
	}
	out := string(want)
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		w, wok := wm.Headers().Lookup(name)
		g, gok := got.Headers().Lookup(name)
		if !wok || !gok {
			continue
		}
		wa, werr := message.ParseAuth(w)
		ga, gerr := message.ParseAuth(g)
		if werr != nil || gerr != nil {
			continue
		}
		nw := w
		for _, param := range []string{"cnonce", "response"} {
			wv, wok := wa.Get(param)
			gv, gok := ga.Get(param)
			if wok && gok && wv != "" {
				nw = strings.Replace(nw, `"`+wv+`"`, `"`+gv+`"`, 1)
			}
		}
		out = strings.Replace(out, w, nw, 1)
	}
	return []byte(out)
}

// describe names a message for errors: "REGISTER", "401 (REGISTER)".
func describe(m message.Message) string {
	switch m := m.(type) {
	case *message.Request:
		return "a " + m.Method + " request"
	case *message.Response:
		cs, _ := m.Header.CSeq()
		return fmt.Sprintf("a %d response to %s", m.StatusCode, cs.Method)
	}
	return "?"
}

// next returns the next datagram from side B that is neither a
// keep-alive nor a retransmission. want names the message awaited, for
// errors.
func (p *player) next(ctx context.Context, want step) ([]byte, message.Message, error) {
	timer := time.NewTimer(p.opts.Timeout)
	defer timer.Stop()
	for {
		select {
		case pkt := <-p.pkts:
			if pkt.err != nil {
				return nil, nil, fmt.Errorf("replay: reading: %w", pkt.err)
			}
			if !p.peer.IsValid() {
				if err := p.setPeer(pkt.from); err != nil {
					return nil, nil, err
				}
			}
			if pkt.from != p.peer {
				p.logf("replay: ignored a datagram from %v (the user agent is %v)", pkt.from, p.peer)
				continue
			}
			if isKeepAlive(pkt.data) {
				continue
			}
			p.addLive(SideB, pkt.data, "")
			msg, err := message.Parse(pkt.data)
			if err != nil {
				return nil, nil, &MismatchError{Index: want.index, Expected: "B->A " + want.msg.Summary(),
					Problems: []string{"the datagram is not a SIP message: " + err.Error()}, Got: pkt.data,
					Want: p.m.apply(want.msg.Data, SideB)}
			}
			if key := retransmissionKey(msg); p.seen[key] {
				p.res.Retransmissions++
				p.res.Trace.Messages[len(p.res.Trace.Messages)-1].Note = "retransmission (ignored)"
				p.logf("replay: B->A %s (a retransmission, ignored)", siptestSummary(pkt.data))
				continue
			} else {
				p.seen[key] = true
			}
			return pkt.data, msg, nil
		case <-timer.C:
			var waiting []string
			for _, i := range p.remain {
				waiting = append(waiting, fmt.Sprintf("%d (B->A %s)", i, p.tr.Messages[i].Summary()))
			}
			after := "the start"
			if p.last != "" {
				after = "the last event: " + p.last
			}
			return nil, nil, fmt.Errorf("%w: nothing from the user agent for %v, waiting for message %s; %s",
				ErrTimeout, p.opts.Timeout, strings.Join(waiting, ", "), after)
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("replay: waiting for message %d (B->A %s): %w", want.index, want.msg.Summary(), ctx.Err())
		}
	}
}

// linger waits Options.Linger for unexpected messages.
func (p *player) linger(ctx context.Context) error {
	if p.opts.Linger <= 0 {
		return nil
	}
	timer := time.NewTimer(p.opts.Linger)
	defer timer.Stop()
	for {
		select {
		case pkt := <-p.pkts:
			if pkt.err != nil {
				return fmt.Errorf("replay: reading: %w", pkt.err)
			}
			if pkt.from != p.peer || isKeepAlive(pkt.data) {
				continue
			}
			p.addLive(SideB, pkt.data, "")
			msg, err := message.Parse(pkt.data)
			if err == nil && p.seen[retransmissionKey(msg)] {
				p.res.Retransmissions++
				p.res.Trace.Messages[len(p.res.Trace.Messages)-1].Note = "retransmission (ignored)"
				continue
			}
			return &MismatchError{Index: -1, Problems: []string{"the trace has no more messages from B"}, Got: pkt.data}
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retransmissionKey identifies a message up to retransmission: the same
// start line in the same transaction with the same tags.
func retransmissionKey(m message.Message) string {
	h := m.Headers()
	v, _ := h.TopVia()
	first := ""
	switch m := m.(type) {
	case *message.Request:
		first = m.Method + " " + m.URI.String()
	case *message.Response:
		first = m.StatusLine()
	}
	return strings.Join([]string{first, h.CallID(), h.Get("CSeq"), v.Branch(), h.FromTag(), h.ToTag()}, "\x00")
}

func siptestSummary(b []byte) string { return Message{Data: b}.Summary() }

// clone returns a copy of m to try a match on.
func (m *mapper) clone() *mapper {
	return &mapper{
		pairs:      maps.Clone(m.pairs),
		rev:        maps.Clone(m.rev),
		kind:       maps.Clone(m.kind),
		keys:       slices.Clone(m.keys),
		cseq:       maps.Clone(m.cseq),
		cseqOffset: maps.Clone(m.cseqOffset),
		recB:       m.recB,
		liveB:      m.liveB,
	}
}
