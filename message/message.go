package message

import (
	"strconv"
	"unsafe"
)

// Message is a *Request or a *Response.
type Message interface {
	// Headers returns the message's header fields.
	Headers() *Header
	// Content returns the message body.
	Content() []byte
	// AppendTo appends the wire form of the message to b.
	AppendTo(b []byte) []byte
	// String returns the wire form of the message.
	String() string
	// Validate checks what a UA must check before it acts on a received
	// message (RFC 3261 §8.2, §8.1.3.3); see Request.Validate.
	Validate() error
	isMessage()
}

// Version is the only SIP version this package speaks.
const Version = "SIP/2.0"

// Request is a SIP request.
type Request struct {
	// Method is the request method, e.g. "INVITE"; methods are
	// case-sensitive.
	Method string
	// URI is the Request-URI.
	URI URI
	// Proto is the SIP version of the request line. "" means SIP/2.0.
	Proto string
	// Header holds the header fields.
	Header Header
	// Body is the message body. Content-Length is always written from
	// len(Body).
	Body []byte
}

// Response is a SIP response.
type Response struct {
	// Proto is the SIP version of the status line. "" means SIP/2.0.
	Proto string
	// StatusCode is the status code, 100 to 699.
	StatusCode int
	// Reason is the reason phrase (may be empty).
	Reason string
	// Header holds the header fields.
	Header Header
	// Body is the message body. Content-Length is always written from
	// len(Body).
	Body []byte
}

func (*Request) isMessage()  {}
func (*Response) isMessage() {}

// Headers returns &r.Header.
func (r *Request) Headers() *Header { return &r.Header }

// Headers returns &r.Header.
func (r *Response) Headers() *Header { return &r.Header }

// Content returns r.Body.
func (r *Request) Content() []byte { return r.Body }

// Content returns r.Body.
func (r *Response) Content() []byte { return r.Body }

func (h *Header) wireSize() int {
	n := 0
	for i := range h.fields {
		n += len(h.fields[i].Name) + len(h.fields[i].Value) + 4
	}
	return n + 24
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}

// AppendTo appends the wire form of r to b.
func (r *Request) AppendTo(b []byte) []byte {
	b = grow(b, len(r.Method)+len(r.URI.Host)+len(r.URI.User)+len(r.URI.Params)+32+r.Header.wireSize()+len(r.Body))
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = r.URI.AppendTo(b)
	b = append(b, ' ')
	if r.Proto == "" {
		b = append(b, Version...)
	} else {
		b = append(b, r.Proto...)
	}
	b = append(b, '\r', '\n')
	b = r.Header.appendTo(b, len(r.Body))
	b = append(b, '\r', '\n')
	return append(b, r.Body...)
}

// AppendTo appends the wire form of r to b.
func (r *Response) AppendTo(b []byte) []byte {
	b = grow(b, len(r.Reason)+16+r.Header.wireSize()+len(r.Body))
	if r.Proto == "" {
		b = append(b, Version...)
	} else {
		b = append(b, r.Proto...)
	}
	b = append(b, ' ')
	b = appendInt(b, r.StatusCode)
	b = append(b, ' ')
	b = append(b, r.Reason...)
	b = append(b, '\r', '\n')
	b = r.Header.appendTo(b, len(r.Body))
	b = append(b, '\r', '\n')
	return append(b, r.Body...)
}

// String returns the wire form of r.
func (r *Request) String() string { return ownedString(r.AppendTo(nil)) }

// String returns the wire form of r.
func (r *Response) String() string { return ownedString(r.AppendTo(nil)) }

// ownedString turns a buffer nobody else holds into a string without a
// copy.
func ownedString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Clone returns a deep copy of r.
func (r *Request) Clone() *Request {
	c := *r
	c.Header = r.Header.Clone()
	c.Body = append([]byte(nil), r.Body...)
	return &c
}

// Clone returns a deep copy of r.
func (r *Response) Clone() *Response {
	c := *r
	c.Header = r.Header.Clone()
	c.Body = append([]byte(nil), r.Body...)
	return &c
}

// Detached returns a copy of r that shares no memory with other messages.
// A response made by NewResponse points into its request's buffer (the
// Via, From, To, Call-ID and CSeq values are the request's), and a parsed
// message into the bytes it was read from: keeping such a response keeps
// all of that alive. Detached copies the reason, the header names and
// values and the body into one new buffer.
func (r *Response) Detached() *Response {
	n := len(r.Reason) + len(r.Proto) + len(r.Body)
	for i := range r.Header.fields {
		f := &r.Header.fields[i]
		if !f.constName() {
			n += len(f.Name)
		}
		n += len(f.Value)
	}
	buf := make([]byte, 0, n)
	str := func(s string) string {
		if s == "" {
			return ""
		}
		start := len(buf)
		buf = append(buf, s...)
		return unsafe.String(unsafe.SliceData(buf[start:]), len(s))
	}
	name := func(f Field) string {
		if f.constName() {
			return headerNames[f.id]
		}
		return str(f.Name)
	}
	c, fields := withFields[Response](len(r.Header.fields))
	c.StatusCode, c.Reason, c.Proto = r.StatusCode, str(r.Reason), str(r.Proto)
	c.Header.fields = fields
	for i, f := range r.Header.fields {
		c.Header.fields[i] = Field{Name: name(f), Value: str(f.Value), id: f.id}
	}
	if r.Body != nil {
		start := len(buf)
		buf = append(buf, r.Body...)
		c.Body = buf[start:len(buf):len(buf)]
	}
	return c
}

// constName reports whether f's name is spelled as its constant long
// name, which a copy can use instead of copying the name.
func (f *Field) constName() bool {
	return f.id != hOther && f.Name == headerNames[f.id]
}

// Validate checks a received request the way a UAS core must before acting
// on it, and returns a *ParseError whose Status is the response to send:
// 505 for a version other than SIP/2.0; 400 for a missing Via, From, To,
// Call-ID or CSeq, a repeated single-value header, a malformed Via, From,
// To, Contact, CSeq or Max-Forwards, a CSeq method other than the request
// method, numbers out of range, or a SIP Request-URI with a headers part.
// Max-Forwards may be absent (RFC 2543 peers).
func (r *Request) Validate() error {
	if err := r.validate(); err != nil {
		err.Message = r
		return err
	}
	return nil
}

func (r *Request) validate() *ParseError {
	if r.Proto != "" && r.Proto != Version {
		return errorf(ErrVersion, "", "version %s", r.Proto)
	}
	if !isToken(r.Method) {
		return errorf(ErrMalformed, "", "bad method %q", r.Method)
	}
	if r.URI.IsSIP() && r.URI.Headers != "" {
		return errorf(ErrMalformed, "", "Request-URI has a headers part")
	}
	if err := validateCommon(&r.Header); err != nil {
		return err
	}
	c, _ := r.Header.CSeq()
	if c.Method != r.Method {
		return errorf(ErrMethodMismatch, "CSeq", "CSeq method %s, request method %s", c.Method, r.Method)
	}
	if _, _, err := r.Header.MaxForwards(); err != nil {
		return asParseErr(err)
	}
	if err := r.Header.parseAddresses(hContact, nil); err != nil {
		return asParseErr(err)
	}
	return nil
}

// Validate checks a received response the way a UAC core must before
// acting on it (a response failing it is dropped): SIP/2.0, a status code
// of 100 to 699, Via, From, To, Call-ID and CSeq present once each (Via at
// least once) and well-formed.
func (r *Response) Validate() error {
	if err := r.validate(); err != nil {
		err.Message = r
		return err
	}
	return nil
}

func (r *Response) validate() *ParseError {
	if r.Proto != "" && r.Proto != Version {
		return errorf(ErrVersion, "", "version %s", r.Proto)
	}
	if r.StatusCode < 100 || r.StatusCode > 699 {
		return errorf(ErrOutOfRange, "", "status code %d", r.StatusCode)
	}
	return validateCommon(&r.Header)
}

func validateCommon(h *Header) *ParseError {
	for _, id := range [...]hid{hVia, hFrom, hTo, hCallID, hCSeq} {
		if h.index(id, "") < 0 {
			return errorf(ErrMissingHeader, headerNames[id], "missing")
		}
	}
	var seen [hCount]uint8
	for i := range h.fields {
		id := h.fields[i].id
		if id != hOther && headerIsSingle(id) {
			if seen[id]++; seen[id] > 1 {
				return errorf(ErrDuplicateHeader, headerNames[id], "appears more than once")
			}
		}
	}
	// Each Via value parses (as Vias would, without collecting them).
	for v := range h.values(hVia, "") {
		if _, err := ParseVia(v); err != nil {
			return asParseErr(err)
		}
	}
	if _, err := h.From(); err != nil {
		return asParseErr(err)
	}
	if _, err := h.To(); err != nil {
		return asParseErr(err)
	}
	if _, err := h.CSeq(); err != nil {
		return asParseErr(err)
	}
	if h.CallID() == "" {
		return errorf(ErrMalformed, "Call-ID", "empty")
	}
	return nil
}

// StatusLine returns "SIP/2.0 code reason".
func (r *Response) StatusLine() string {
	return Version + " " + strconv.Itoa(r.StatusCode) + " " + r.Reason
}
