package replay

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sipua/sip/message"
)

// mapper holds what a replay has learnt about the values that differ
// between the recording and this run: recorded value → live value.
type mapper struct {
	pairs map[string]string // recorded → live
	rev   map[string]string // live → recorded
	kind  map[string]string // recorded → what it is, for messages
	keys  []string          // recorded values that differ from their live value, longest first

	// CSeq numbers of side B's requests, per recorded Call-ID.
	cseq       map[cseqKey]uint32
	cseqOffset map[string]int64

	// Side B's recorded and live address, for the received and rport
	// parameters side A added to B's Via.
	recB, liveB netip.AddrPort
}

type cseqKey struct {
	callID string
	seq    uint32
}

func newMapper() *mapper {
	return &mapper{
		pairs:      map[string]string{},
		rev:        map[string]string{},
		kind:       map[string]string{},
		cseq:       map[cseqKey]uint32{},
		cseqOffset: map[string]int64{},
	}
}

// learn records that the recorded value rec is live in this run. It fails
// when rec already stood for another value, or live for another recorded
// value. Empty values are not learnt; presence is checked elsewhere.
func (m *mapper) learn(kind, rec, live string) error {
	if rec == "" || live == "" {
		return nil
	}
	if old, ok := m.pairs[rec]; ok {
		if old != live {
			return fmt.Errorf("%s: the trace's %q is %q in this run, but here it is %q", kind, rec, old, live)
		}
		return nil
	}
	if old, ok := m.rev[live]; ok && old != rec {
		return fmt.Errorf("%s: %q stands for the trace's %q in this run, but here for %q (the trace has two values where this run has one)",
			kind, live, old, rec)
	}
	m.pairs[rec], m.rev[live], m.kind[rec] = live, rec, kind
	if rec != live {
		m.keys = append(m.keys, rec)
		slices.SortStableFunc(m.keys, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	}
	return nil
}

// known reports whether rec has a mapping.
func (m *mapper) known(rec string) bool {
	_, ok := m.pairs[rec]
	return ok
}

// identity records that a value side A sends stays as recorded, unless it
// already has a mapping (a value of side B that A echoes).
func (m *mapper) identity(kind, v string) {
	if v != "" && !m.known(v) {
		_ = m.learn(kind, v, v)
	}
}

// learnCSeq records the live CSeq number of one of side B's requests and
// checks that the numbers of a call keep their recorded distances.
func (m *mapper) learnCSeq(recCallID string, rec, live uint32) error {
	off := int64(live) - int64(rec)
	if old, ok := m.cseqOffset[recCallID]; ok && old != off {
		return fmt.Errorf("CSeq: the trace's %d is %d here, but the numbers of this call so far were offset by %+d (want %d)",
			rec, live, old, int64(rec)+old)
	}
	m.cseqOffset[recCallID] = off
	m.cseq[cseqKey{recCallID, rec}] = live
	return nil
}

// liveCSeq returns the live number of a recorded CSeq of side B.
func (m *mapper) liveCSeq(recCallID string, rec uint32) (uint32, bool) {
	if v, ok := m.cseq[cseqKey{recCallID, rec}]; ok {
		return v, true
	}
	if off, ok := m.cseqOffset[recCallID]; ok {
		return uint32(int64(rec) + off), true
	}
	return 0, false
}

// Mapping returns the learnt values that differ from the recording,
// recorded → live.
func (m *mapper) mapping() map[string]string {
	out := make(map[string]string, len(m.keys))
	for _, k := range m.keys {
		out[k] = m.pairs[k]
	}
	return out
}

// isWordChar reports whether c can continue a token, a host name or a
// number: a value is only replaced where it does not continue one.
func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// subst replaces every recorded value in s by its live value, longest
// first, in one pass (a replacement is never replaced again), and only
// where the value stands alone (not inside a longer token).
func (m *mapper) subst(s string) string {
	if len(m.keys) == 0 {
		return s
	}
	var b strings.Builder
	i := 0
	for i < len(s) {
		hit := ""
		for _, k := range m.keys {
			if !strings.HasPrefix(s[i:], k) {
				continue
			}
			before := i == 0 || !isWordChar(s[i-1]) || !isWordChar(k[0])
			after := i+len(k) == len(s) || !isWordChar(s[i+len(k)]) || !isWordChar(k[len(k)-1])
			if before && after {
				hit = k
				break
			}
		}
		if hit != "" {
			b.WriteString(m.pairs[hit])
			i += len(hit)
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// apply rewrites a recorded message with this run's values: tokens and
// addresses everywhere in the start line and header fields, the CSeq
// numbers of side B's transactions (in B's requests and A's responses),
// and the received and rport parameters side A added to B's Via. The body
// is left as recorded.
func (m *mapper) apply(data []byte, from Side) []byte {
	end := headerEnd(data)
	if end < 0 {
		return []byte(m.subst(string(data)))
	}
	msg, _ := message.Parse(data)
	isReq := false
	recCallID := ""
	if msg != nil {
		_, isReq = msg.(*message.Request)
		recCallID = msg.Headers().CallID()
	}
	bTransaction := from == SideB && isReq || from == SideA && !isReq
	var out []byte
	topVia := true
	hdr := data[:end]
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i+1], hdr[i+1:]
		} else {
			hdr = nil
		}
		text := strings.TrimRight(string(line), "\r\n")
		eol := string(line[len(text):])
		s := m.subst(text)
		name, value, ok := strings.Cut(s, ":")
		if ok && name != "" && name[0] != ' ' && name[0] != '\t' {
			switch message.CanonicalName(strings.TrimSpace(name)) {
			case "CSeq":
				if bTransaction {
					s = m.mapCSeqLine(name, value, recCallID)
				}
			case "Via":
				if from == SideA && !isReq && topVia {
					s = name + ":" + m.mapReceived(value)
				}
				topVia = false
			}
		}
		out = append(out, s...)
		out = append(out, eol...)
	}
	return append(out, data[end:]...)
}

// mapCSeqLine rewrites the number of a CSeq header line.
func (m *mapper) mapCSeqLine(name, value, recCallID string) string {
	trimmed := strings.TrimLeft(value, " \t")
	lead := value[:len(value)-len(trimmed)]
	j := 0
	for j < len(trimmed) && trimmed[j] >= '0' && trimmed[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(trimmed[:j], 10, 32)
	if err != nil {
		return name + ":" + value
	}
	live, ok := m.liveCSeq(recCallID, uint32(n))
	if !ok {
		return name + ":" + value
	}
	return name + ":" + lead + strconv.FormatUint(uint64(live), 10) + trimmed[j:]
}

// mapReceived rewrites received=<B's recorded IP> and rport=<B's recorded
// port> in the first value of a Via header line.
func (m *mapper) mapReceived(value string) string {
	if !m.recB.IsValid() || !m.liveB.IsValid() {
		return value
	}
	first, rest := value, ""
	if i := strings.IndexByte(value, ','); i >= 0 {
		first, rest = value[:i], value[i:]
	}
	parts := strings.Split(first, ";")
	for i, p := range parts {
		n, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "received":
			if strings.TrimSpace(v) == m.recB.Addr().String() {
				parts[i] = n + "=" + m.liveB.Addr().String()
			}
		case "rport":
			if strings.TrimSpace(v) == strconv.Itoa(int(m.recB.Port())) {
				parts[i] = n + "=" + strconv.Itoa(int(m.liveB.Port()))
			}
		}
	}
	return strings.Join(parts, ";") + rest
}

// hostPort returns a URI's host and port as written in messages.
func hostPort(u message.URI) string {
	if u.Host == "" {
		return ""
	}
	return u.HostPort()
}

// register records the values of a message side A sends as they are
// (Call-ID, tags, branches, sent-by), so that side B must echo them
// unchanged.
func (m *mapper) register(msg message.Message) {
	h := msg.Headers()
	m.identity("Call-ID", h.CallID())
	if a, err := h.From(); err == nil {
		m.identity("From tag", a.Tag())
	}
	if a, err := h.To(); err == nil {
		m.identity("To tag", a.Tag())
	}
	if vias, err := h.Vias(); err == nil {
		for _, v := range vias {
			m.identity("Via branch", v.Branch())
			m.identity("Via sent-by", v.SentBy())
		}
	}
}

// learnFrom learns the values of a message side B sent in this run (got)
// from the same message in the trace (rec), and returns the conflicts.
func (m *mapper) learnFrom(rec, got message.Message) []string {
	var problems []string
	add := func(err error) {
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	rh, gh := rec.Headers(), got.Headers()
	add(m.learn("Call-ID", rh.CallID(), gh.CallID()))
	ra, rerr := rh.From()
	ga, gerr := gh.From()
	if rerr == nil && gerr == nil {
		add(m.learn("From tag", ra.Tag(), ga.Tag()))
	}
	ra, rerr = rh.To()
	ga, gerr = gh.To()
	if rerr == nil && gerr == nil {
		add(m.learn("To tag", ra.Tag(), ga.Tag()))
	}
	rv, rerr := rh.Vias()
	gv, gerr := gh.Vias()
	if rerr == nil && gerr == nil && len(rv) == len(gv) {
		for i := range rv {
			add(m.learn("Via branch", rv[i].Branch(), gv[i].Branch()))
			add(m.learn("Via sent-by", rv[i].SentBy(), gv[i].SentBy()))
		}
	}
	rc, rerr := rh.Contacts()
	gc, gerr := gh.Contacts()
	if rerr == nil && gerr == nil && len(rc) == len(gc) {
		for i := range rc {
			add(m.learn("Contact user", rc[i].URI.User, gc[i].URI.User))
			add(m.learn("Contact host", hostPort(rc[i].URI), hostPort(gc[i].URI)))
		}
	}
	if rq, ok := rec.(*message.Request); ok {
		gq := got.(*message.Request)
		rcs, rerr := rq.Header.CSeq()
		gcs, gerr := gq.Header.CSeq()
		if rerr == nil && gerr == nil {
			add(m.learnCSeq(rq.Header.CallID(), rcs.Seq, gcs.Seq))
		}
	}
	return problems
}
