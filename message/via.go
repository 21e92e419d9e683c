package message

import (
	"net/netip"
	"strconv"
	"strings"
	"unsafe"
)

// Via is one Via header field value (RFC 3261 §20.42, RFC 3581).
type Via struct {
	// Proto is the protocol name and version, "SIP/2.0".
	Proto string
	// Transport is the transport in upper case: "UDP", "TCP", "TLS",
	// "SCTP", "WS", "WSS" or another token.
	Transport string
	// Host is the sent-by host; an IPv6 address has no brackets.
	Host string
	// Port is the sent-by port, or 0 when absent.
	Port int
	// Params are the via-params (branch, received, rport, maddr, ttl …).
	Params Params
}

// MagicCookie starts every RFC 3261 branch parameter.
const MagicCookie = "z9hG4bK"

// Branch returns the branch parameter.
func (v Via) Branch() string { b, _ := v.Params.Get("branch"); return b }

// Received returns the received parameter, or "".
func (v Via) Received() string { r, _ := v.Params.Get("received"); return r }

// RPort returns the value of the rport parameter (RFC 3581): present
// reports whether the parameter is there at all, port is 0 when it has no
// value.
func (v Via) RPort() (port int, present bool) {
	s, ok := v.Params.Get("rport")
	if !ok {
		return 0, false
	}
	p, _ := parseUint(s, 65535)
	return int(p), true
}

// SentBy returns host[:port] of the sent-by.
func (v Via) SentBy() string { return string(appendHostPort(nil, v.Host, v.Port)) }

// AppendTo appends the wire form of v.
func (v Via) AppendTo(b []byte) []byte {
	if v.Proto == "" {
		b = append(b, "SIP/2.0"...)
	} else {
		b = append(b, v.Proto...)
	}
	b = append(b, '/')
	b = append(b, v.Transport...)
	b = append(b, ' ')
	b = appendHostPort(b, v.Host, v.Port)
	if v.Params != "" {
		b = append(b, ';')
		b = append(b, v.Params...)
	}
	return b
}

// String returns the wire form of v.
func (v Via) String() string { return string(v.AppendTo(make([]byte, 0, 64))) }

// ParseVia parses a single Via value (one element of the comma-separated
// list).
func ParseVia(s string) (Via, error) {
	var v Via
	err := v.parse(s)
	return v, err
}

func viaError(s, what string) error {
	return errorf(ErrMalformed, "Via", "%q: %s", s, what)
}

func (v *Via) parse(s string) error {
	// sent-protocol = protocol-name SLASH protocol-version SLASH transport,
	// with LWS allowed around each slash.
	i := skipWS(s, 0)
	var parts [3]string
	for k := 0; k < 3; k++ {
		st := i
		for i < len(s) && charClass[s[i]]&cToken != 0 {
			i++
		}
		if i == st {
			return viaError(s, "bad sent-protocol")
		}
		parts[k] = s[st:i]
		i = skipWS(s, i)
		if k < 2 {
			if i >= len(s) || s[i] != '/' {
				return viaError(s, "bad sent-protocol")
			}
			i = skipWS(s, i+1)
		}
	}
	if equalFold(parts[0], "SIP") && parts[1] == "2.0" {
		v.Proto = "SIP/2.0"
	} else {
		v.Proto = strings.ToUpper(parts[0]) + "/" + parts[1]
	}
	v.Transport = upperTransport(parts[2])
	if i == len(s) {
		return viaError(s, "no sent-by")
	}
	st := i
	for i < len(s) && s[i] != ';' && !isWS(s[i]) {
		i++
	}
	hp := s[st:i]
	// LWS is allowed around the port colon in theory; accept "host : port".
	j := skipWS(s, i)
	if j < len(s) && s[j] == ':' {
		k := skipWS(s, j+1)
		e := k
		for e < len(s) && isDigit(s[e]) {
			e++
		}
		hp = s[st:i] + ":" + s[k:e]
		i = e
	}
	host, port, reason := splitHostPort(hp)
	if reason != "" {
		return viaError(s, reason)
	}
	v.Host, v.Port = host, port
	i = skipWS(s, i)
	if i < len(s) {
		if s[i] != ';' {
			return viaError(s, "junk after sent-by")
		}
		p, ok := parseHeaderParams(s[i+1:])
		if !ok {
			return viaError(s, "bad parameter")
		}
		v.Params = p
	}
	return nil
}

func upperTransport(t string) string {
	switch {
	case equalFold(t, "UDP"):
		return "UDP"
	case equalFold(t, "TCP"):
		return "TCP"
	case equalFold(t, "TLS"):
		return "TLS"
	case equalFold(t, "WS"):
		return "WS"
	case equalFold(t, "WSS"):
		return "WSS"
	case equalFold(t, "SCTP"):
		return "SCTP"
	}
	return strings.ToUpper(t)
}

// TopVia returns the first Via value: the one a UA checks on responses and
// that carries the transaction's branch.
func (h *Header) TopVia() (Via, error) {
	for i := range h.fields {
		f := &h.fields[i]
		if f.id != hVia {
			continue
		}
		first := f.Value
		if strings.IndexByte(first, ',') >= 0 {
			splitList(f.Value, func(s string) bool { first = s; return false })
		}
		return ParseVia(first)
	}
	return Via{}, errorf(ErrMissingHeader, "Via", "no Via")
}

// Vias returns all Via values in order.
func (h *Header) Vias() ([]Via, error) {
	var out []Via
	for s := range h.values(hVia, "") {
		v, err := ParseVia(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ViaCount returns the number of Via values (not lines).
func (h *Header) ViaCount() int {
	n := 0
	for range h.values(hVia, "") {
		n++
	}
	return n
}

// PrependVia inserts v as the first Via.
func (h *Header) PrependVia(v Via) { h.Prepend("Via", v.String()) }

// SetTopVia replaces the first Via value with v, in place, keeping the
// other values of its line; without a Via it adds one first.
func (h *Header) SetTopVia(v Via) {
	i := h.index(hVia, "")
	if i < 0 {
		h.PrependVia(v)
		return
	}
	rest := topViaRest(h.fields[i].Value)
	b := make([]byte, 0, v.wireSize()+len(rest)+2)
	b = v.AppendTo(b)
	h.fields[i].Value = viaLine(b, rest)
}

// wireSize is an upper bound of the length of v's wire form.
func (v Via) wireSize() int {
	return len(v.Proto) + len("SIP/2.0") + len(v.Transport) + len(v.Host) + len(v.Params) + 12
}

// topViaRest returns the Via values after the first one of a line, joined
// with ", ", or "".
func topViaRest(val string) string {
	if strings.IndexByte(val, ',') < 0 {
		return ""
	}
	rest := ""
	seen := false
	splitList(val, func(s string) bool {
		if !seen {
			seen = true
			return true
		}
		if rest != "" {
			rest += ", "
		}
		rest += s
		return true
	})
	return rest
}

// viaLine appends rest (when there is one) to the new top value in b and
// returns the line as a string that shares b's memory: b is not written
// again.
func viaLine(b []byte, rest string) string {
	if rest != "" {
		b = append(b, ", "...)
		b = append(b, rest...)
	}
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// SetReceivedFrom notes in the top Via of a request where it came from,
// as a server transport must (RFC 3261 §18.2.1, RFC 3581 §4): a received
// parameter with src's address when the sent-by host is not that address,
// and src's port as the value of an rport parameter without one. It
// reports whether the Via changed; a message without a readable Via is
// left alone. The new value is built in one allocation.
func (h *Header) SetReceivedFrom(src netip.AddrPort) bool {
	i := h.index(hVia, "")
	if i < 0 {
		return false
	}
	v, err := h.TopVia()
	if err != nil {
		return false
	}
	ip := src.Addr().Unmap()
	recv := true
	if a, err := netip.ParseAddr(v.Host); err == nil && a.Unmap() == ip {
		recv = false
	}
	rport, has := v.RPort()
	fill := has && rport == 0
	if !recv && !fill {
		return false
	}
	rest := topViaRest(h.fields[i].Value)
	b := make([]byte, 0, v.wireSize()+len(rest)+len(";received=;rport=")+46+6)
	pv := v
	pv.Params = ""
	b = pv.AppendTo(b)
	doneRecv, doneRport := !recv, !fill
	for n, val := range v.Params.All() {
		b = append(b, ';')
		switch {
		case !doneRecv && equalFold(n, "received"):
			b = append(b, "received="...)
			b = ip.AppendTo(b)
			doneRecv = true
		case !doneRport && equalFold(n, "rport"):
			b = append(b, "rport="...)
			b = strconv.AppendUint(b, uint64(src.Port()), 10)
			doneRport = true
		default:
			b = append(b, n...)
			if val != "" {
				b = append(b, '=')
				b = append(b, val...)
			}
		}
	}
	if !doneRecv {
		b = append(b, ";received="...)
		b = ip.AppendTo(b)
	}
	h.fields[i].Value = viaLine(b, rest)
	return true
}

// RemoveTopVia removes the first Via value, leaving the others of its line.
func (h *Header) RemoveTopVia() {
	i := h.index(hVia, "")
	if i < 0 {
		return
	}
	val := h.fields[i].Value
	rest := ""
	seen := false
	splitList(val, func(s string) bool {
		if !seen {
			seen = true
			return true
		}
		if rest != "" {
			rest += ", "
		}
		rest += s
		return true
	})
	if rest == "" {
		h.fields = append(h.fields[:i], h.fields[i+1:]...)
		return
	}
	h.fields[i].Value = rest
}
