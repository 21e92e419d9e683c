package message

import (
	"bytes"
	"strings"
	"unsafe"
)

// Limits bounds what the parser accepts. The zero value of each field
// selects its default; a negative value means no limit.
type Limits struct {
	// MaxMessageSize is the largest message in bytes, header section and
	// body together. Default 65535 (the largest UDP datagram). A larger
	// message fails with ErrTooLarge (status 513).
	MaxMessageSize int
	// MaxHeaders is the largest number of header field lines. Default
	// 256. More fail with ErrTooLarge (status 400).
	MaxHeaders int
	// MaxLineLength is the longest start line or header field, folded
	// lines included, in bytes. Default 8192. Longer fails with
	// ErrTooLarge (status 400; 414 for a request line whose Request-URI
	// takes more than half of it).
	MaxLineLength int
	// MaxBodySize is the largest body in bytes. Default 65535. Larger
	// fails with ErrTooLarge (status 413).
	MaxBodySize int
}

// Default limits; see Limits.
const (
	DefaultMaxMessageSize = 65535
	DefaultMaxHeaders     = 256
	DefaultMaxLineLength  = 8192
	DefaultMaxBodySize    = 65535
)

func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1)
	}
	return v
}

// WithDefaults returns l with every zero field set to its default and
// every negative one (no limit) set to the largest int.
func (l Limits) WithDefaults() Limits { return l.norm() }

func (l Limits) norm() Limits {
	return Limits{
		MaxMessageSize: limit(l.MaxMessageSize, DefaultMaxMessageSize),
		MaxHeaders:     limit(l.MaxHeaders, DefaultMaxHeaders),
		MaxLineLength:  limit(l.MaxLineLength, DefaultMaxLineLength),
		MaxBodySize:    limit(l.MaxBodySize, DefaultMaxBodySize),
	}
}

// Parse parses one message from a datagram (or a WebSocket message) with
// the default Limits. The body is delimited by Content-Length when present,
// and extends to the end of b otherwise; octets after Content-Length are
// ignored (RFC 3261 §18.3). Parse copies b: the caller may reuse it.
//
// Parse checks the framing, the start line and the header section. It
// checks header values only as far as the framing needs (Content-Length);
// the rest is parsed when read. Call Validate on a received message before
// acting on it.
//
// On error, the result is nil and the error is a *ParseError; its Message
// field holds the message as far as it was parsed when a UAS can still
// answer it (e.g. 400 for a bad Content-Length or an unparsable
// Request-URI). For a request over the Limits, Message holds only the
// start line (without the Request-URI when that is what is too long) and
// the Via, From, To, Call-ID and CSeq fields, when those can be read
// within the limits: enough to answer with the error's Status.
func Parse(b []byte) (Message, error) { return Limits{}.Parse(b) }

// Parse is like the package-level Parse with limits l.
func (l Limits) Parse(b []byte) (Message, error) {
	return parse(b, l.norm(), false)
}

// ParseRequest parses b and returns an error wrapping ErrMalformed if it
// is a response.
func ParseRequest(b []byte) (*Request, error) {
	m, err := Parse(b)
	if err != nil {
		return nil, err
	}
	r, ok := m.(*Request)
	if !ok {
		return nil, errorf(ErrMalformed, "", "not a request")
	}
	return r, nil
}

// ParseResponse parses b and returns an error wrapping ErrMalformed if it
// is a request.
func ParseResponse(b []byte) (*Response, error) {
	m, err := Parse(b)
	if err != nil {
		return nil, err
	}
	r, ok := m.(*Response)
	if !ok {
		return nil, errorf(ErrMalformed, "", "not a response")
	}
	return r, nil
}

// nextLine returns the line starting at i, without its CRLF or LF, and the
// index after its end. end is -1 when no line end follows.
func nextLine(s string, i int) (line string, next int) {
	j := strings.IndexByte(s[i:], '\n')
	if j < 0 {
		return s[i:], -1
	}
	line = s[i : i+j]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, i + j + 1
}

func parse(in []byte, lim Limits, stream bool) (Message, error) {
	if len(in) > lim.MaxMessageSize {
		e := errorf(ErrTooLarge, "", "message of %d bytes over the limit of %d", len(in), lim.MaxMessageSize)
		e.Status = 513
		if r := salvage(in, lim, nil); r != nil {
			e.Message = r
		}
		return nil, e
	}
	// Skip CRLFs before the start line (RFC 3261 §7.5).
	start := 0
	for start < len(in) && (in[start] == '\r' || in[start] == '\n') {
		start++
	}
	if start == len(in) {
		return nil, errorf(ErrMalformed, "", "empty message")
	}
	// The message owns one copy of the input; every string of the parsed
	// message points into it, and it is never written again, so the
	// strings are immutable as Go requires. Body aliases the tail of the
	// copy, which no string refers to.
	own := make([]byte, len(in)-start)
	copy(own, in[start:])
	s := unsafe.String(&own[0], len(own))

	first, i := nextLine(s, 0)
	if i < 0 {
		return nil, errorf(ErrMalformed, "", "no end of start line")
	}
	if len(first) > lim.MaxLineLength {
		e := errorf(ErrTooLarge, "", "start line over %d bytes", lim.MaxLineLength)
		if method, uri, ok := splitRequestLine(first); ok {
			if len(uri) > lim.MaxLineLength/2 {
				e.Detail = "Request-URI too long"
				e.Status = 414
			}
			if r := salvage(in, lim, &Request{Method: method}); r != nil {
				e.Message = r
			}
		}
		return nil, e
	}

	// The start line is parsed into a local value; the message and its
	// header fields are allocated together once the fields are counted.
	var (
		rq     Request
		rs     Response
		isResp bool
	)
	// uriErr is a Request-URI that does not parse in an otherwise
	// readable request line: the header section is parsed still, so that
	// the request can be answered 400 (RFC 3261 §8.2).
	var uriErr *ParseError
	if strings.HasPrefix(first, "SIP/") || strings.HasPrefix(first, "sip/") {
		isResp = true
		if err := rs.parseStatusLine(first); err != nil {
			return nil, err
		}
	} else {
		if err := rq.parseRequestLine(first); err != nil {
			if rq.Method == "" { // not only the Request-URI is bad
				return nil, err
			}
			uriErr = err
		}
	}

	// One pass over the header lines. Fields gather in a stack array and
	// are copied once into a slice of the exact size.
	var stackFields [32]Field
	fields := stackFields[:0]
	clCount := 0
	cl := -1
	var clErr *ParseError
	p := i
	bodyStart := -1
	for {
		line, next := nextLine(s, p)
		if next < 0 {
			if line == "" && !stream {
				// A datagram may end right after the last header line
				// without the empty line (lenient).
				bodyStart = len(s)
				break
			}
			return nil, errorf(ErrMalformed, "", "no end of header section")
		}
		if line == "" {
			bodyStart = next
			break
		}
		if isWS(line[0]) {
			return nil, errorf(ErrMalformed, "", "continuation line before the first header")
		}
		if len(fields) == lim.MaxHeaders {
			e := errorf(ErrTooLarge, "", "more than %d header fields", lim.MaxHeaders)
			if r := salvageAfter(&rq, isResp, in, lim); r != nil {
				e.Message = r
			}
			return nil, e
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, errorf(ErrMalformed, "", "header line without colon: %q", truncate(line))
		}
		name := line[:colon]
		for len(name) > 0 && isWS(name[len(name)-1]) {
			name = name[:len(name)-1]
		}
		if !isToken(name) {
			return nil, errorf(ErrMalformed, "", "bad header name %q", truncate(name))
		}
		value := trimWS(line[colon+1:])
		total := len(line)
		// Folded continuation lines.
		if next < len(s) && isWS(s[next]) {
			var b strings.Builder
			b.WriteString(value)
			for next < len(s) && isWS(s[next]) {
				cont, n2 := nextLine(s, next)
				if n2 < 0 {
					return nil, errorf(ErrMalformed, "", "no end of header section")
				}
				total += len(cont)
				if total > lim.MaxLineLength {
					break
				}
				if c := trimWS(cont); c != "" {
					if b.Len() > 0 {
						b.WriteByte(' ')
					}
					b.WriteString(c)
				}
				next = n2
			}
			value = b.String()
		}
		if total > lim.MaxLineLength {
			e := errorf(ErrTooLarge, CanonicalName(name), "header field over %d bytes", lim.MaxLineLength)
			if r := salvageAfter(&rq, isResp, in, lim); r != nil {
				e.Message = r
			}
			return nil, e
		}
		id := lookupID(name)
		fields = append(fields, Field{Name: name, Value: value, id: id})
		if id == hContentLength {
			clCount++
			if clCount > 1 {
				clErr = errorf(ErrContentLength, "Content-Length", "repeated")
			} else if n, ok := parseUint(value, 1<<31-1); ok {
				cl = int(n)
			} else {
				clErr = errorf(ErrContentLength, "Content-Length", "%q", truncate(value))
			}
		}
		p = next
	}
	var msg Message
	var h *Header
	if isResp {
		r, fs := withFields[Response](len(fields))
		*r = rs
		msg, h = r, &r.Header
		h.fields = fs
	} else {
		r, fs := withFields[Request](len(fields))
		*r = rq
		msg, h = r, &r.Header
		h.fields = fs
	}
	copy(h.fields, fields)
	if uriErr != nil {
		if validateCommon(h) == nil {
			uriErr.Message = msg
		}
		return nil, uriErr
	}
	if clErr != nil {
		clErr.Message = msg
		return nil, clErr
	}

	avail := len(s) - bodyStart
	n := avail
	switch {
	case cl >= 0:
		if cl > avail {
			e := errorf(ErrContentLength, "Content-Length", "%d bytes announced, %d present", cl, avail)
			e.Message = msg
			return nil, e
		}
		n = cl
	case stream:
		n = 0
	}
	if n > lim.MaxBodySize {
		e := errorf(ErrTooLarge, "", "body of %d bytes over the limit of %d", n, lim.MaxBodySize)
		e.Status = 413
		e.Message = msg
		return nil, e
	}
	if n > 0 {
		body := own[bodyStart : bodyStart+n : bodyStart+n]
		switch r := msg.(type) {
		case *Request:
			r.Body = body
		case *Response:
			r.Body = body
		}
	}
	return msg, nil
}

// withFields returns a new message (a Request or a Response) and a slice
// of n header fields allocated with it in one block, for the common
// sizes. The slice's capacity is n: appending a field moves the fields
// elsewhere, so copies of the Header never share new fields.
func withFields[M any](n int) (*M, []Field) {
	switch {
	case n <= 2:
		b := new(struct {
			m M
			f [2]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 4:
		b := new(struct {
			m M
			f [4]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 6:
		b := new(struct {
			m M
			f [6]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 8:
		b := new(struct {
			m M
			f [8]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 10:
		b := new(struct {
			m M
			f [10]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 12:
		b := new(struct {
			m M
			f [12]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 14:
		b := new(struct {
			m M
			f [14]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 16:
		b := new(struct {
			m M
			f [16]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 20:
		b := new(struct {
			m M
			f [20]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 24:
		b := new(struct {
			m M
			f [24]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 28:
		b := new(struct {
			m M
			f [28]Field
		})
		return &b.m, b.f[:n:n]
	case n <= 32:
		b := new(struct {
			m M
			f [32]Field
		})
		return &b.m, b.f[:n:n]
	}
	return new(M), make([]Field, n)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func parseVersion(v string) (string, bool) {
	if len(v) < 5 || !equalFold(v[:4], "SIP/") {
		return "", false
	}
	maj, min, ok := strings.Cut(v[4:], ".")
	if !ok || maj == "" || min == "" {
		return "", false
	}
	for i := 0; i < len(maj); i++ {
		if !isDigit(maj[i]) {
			return "", false
		}
	}
	for i := 0; i < len(min); i++ {
		if !isDigit(min[i]) {
			return "", false
		}
	}
	if v == Version || equalFold(v, Version) {
		return Version, true
	}
	return v, true
}

// parseRequestLine parses Method SP Request-URI SP SIP-Version into r.
// On an error with r.Method set, only the Request-URI is bad.
func (r *Request) parseRequestLine(line string) *ParseError {
	// Runs of spaces and trailing spaces are tolerated (RFC 4475
	// §3.1.2.9, §3.1.2.10).
	var parts [3]string
	n := 0
	i := 0
	for n < 4 {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		st := i
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if n == 3 {
			n++
			break
		}
		parts[n] = line[st:i]
		n++
	}
	if n != 3 {
		return errorf(ErrMalformed, "", "bad request line %q", truncate(line))
	}
	if !isToken(parts[0]) {
		return errorf(ErrMalformed, "", "bad method %q", truncate(parts[0]))
	}
	v, ok := parseVersion(parts[2])
	if !ok {
		return errorf(ErrMalformed, "", "bad SIP version %q", truncate(parts[2]))
	}
	r.Method = parts[0]
	if v != Version {
		r.Proto = v
	}
	if err := r.URI.parse(parts[1]); err != nil {
		return errorf(ErrMalformed, "", "bad Request-URI %q", truncate(parts[1]))
	}
	return nil
}

// splitRequestLine returns the method and the Request-URI of a request
// line too long to parse in full, if its method is a token and it ends
// with a SIP version.
func splitRequestLine(line string) (method, uri string, ok bool) {
	method, rest, ok := strings.Cut(line, " ")
	if !ok || !isToken(method) {
		return "", "", false
	}
	rest = strings.TrimRight(rest, " ")
	sp := strings.LastIndexByte(rest, ' ')
	if sp < 0 {
		return "", "", false
	}
	if _, ok := parseVersion(rest[sp+1:]); !ok {
		return "", "", false
	}
	return method, strings.Trim(rest[:sp], " "), true
}

// salvageAfter is salvage for a message whose start line parsed: nil for
// a response (a response over the limits is dropped, not answered).
func salvageAfter(r *Request, isResp bool, in []byte, lim Limits) *Request {
	if isResp {
		return nil
	}
	return salvage(in, lim, &Request{Method: r.Method, URI: r.URI, Proto: r.Proto})
}

// salvage reads what a UAS needs to answer a request over the limits
// (RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq) from in, skipping
// every other header field and its length. It returns r (a request whose
// start line was read; nil: parse it from in) with those fields, or nil if
// in is not a request or they are missing, repeated, malformed, over
// MaxLineLength, or more than MaxHeaders (a response would be over the
// limits too).
func salvage(in []byte, lim Limits, r *Request) *Request {
	s := string(in)
	start := 0
	for start < len(s) && (s[start] == '\r' || s[start] == '\n') {
		start++
	}
	first, i := nextLine(s, start)
	if i < 0 {
		return nil
	}
	if r == nil {
		if len(first) > lim.MaxLineLength {
			return nil
		}
		r = &Request{}
		if err := r.parseRequestLine(first); err != nil && r.Method == "" {
			return nil
		}
	}
	var fields []Field
	keep := false // the last field is kept: its continuation lines too
	for p := i; p < len(s); {
		line, next := nextLine(s, p)
		if line == "" {
			break
		}
		if next < 0 {
			next = len(s)
		}
		p = next
		if isWS(line[0]) {
			if keep {
				f := &fields[len(fields)-1]
				if len(f.Value)+len(line) > lim.MaxLineLength {
					return nil
				}
				f.Value += " " + trimWS(line)
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = trimWS(name)
		id := lookupID(name)
		keep = ok && isToken(name) && (id == hVia || id == hFrom || id == hTo || id == hCallID || id == hCSeq)
		if !keep {
			continue
		}
		if len(line) > lim.MaxLineLength || len(fields) == lim.MaxHeaders {
			return nil
		}
		fields = append(fields, Field{Name: name, Value: trimWS(value), id: id})
	}
	r.Header.fields = fields
	if validateCommon(&r.Header) != nil {
		return nil
	}
	return r
}

func (r *Response) parseStatusLine(line string) *ParseError {
	ver, rest, ok := strings.Cut(line, " ")
	if !ok {
		return errorf(ErrMalformed, "", "bad status line %q", truncate(line))
	}
	v, ok := parseVersion(ver)
	if !ok {
		return errorf(ErrMalformed, "", "bad SIP version %q", truncate(ver))
	}
	if v != Version {
		r.Proto = v
	}
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	code, reason, _ := strings.Cut(rest, " ")
	if len(code) != 3 {
		return errorf(ErrMalformed, "", "bad status code %q", truncate(code))
	}
	c, ok := parseUint(code, 999)
	if !ok || c < 100 || c > 699 {
		return errorf(ErrMalformed, "", "bad status code %q", code)
	}
	r.StatusCode = int(c)
	r.Reason = reason
	return nil
}

var crlfcrlf = []byte("\r\n\r\n")

// HeaderEnd returns the index just after the empty line ending the header
// section that starts b, or -1 when b holds no whole header section. Bare LF
// line ends are accepted: the first line end (LF or CRLF) right after
// another one ends the section, so a prefix of a stream finds the same end
// as the whole stream. It is the end [Limits.Frame] uses.
func HeaderEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		j += i
		switch {
		case j+1 < len(b) && b[j+1] == '\n':
			return j + 2
		case j+2 < len(b) && b[j+1] == '\r' && b[j+2] == '\n':
			return j + 3
		}
		i = j + 1
	}
}
