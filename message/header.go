package message

import "iter"

// hid identifies a header field the package knows; 0 is any other.
type hid uint8

const (
	hOther hid = iota
	hVia
	hFrom
	hTo
	hCallID
	hCSeq
	hMaxForwards
	hContact
	hRoute
	hRecordRoute
	hContentLength
	hContentType
	hExpires
	hMinExpires
	hWWWAuthenticate
	hProxyAuthenticate
	hAuthorization
	hProxyAuthorization
	hAllow
	hSupported
	hRequire
	hProxyRequire
	hUnsupported
	hRSeq
	hRAck
	hSessionExpires
	hMinSE
	hReferTo
	hReferredBy
	hReplaces
	hEvent
	hSubscriptionState
	hReason
	hRetryAfter
	hAccept
	hUserAgent
	hServer
	hContentEncoding
	hSubject
	hAllowEvents
	hTimestamp
	hContentDisposition
	hAcceptEncoding
	hAcceptLanguage
	hDate
	hOrganization
	hPriority
	hWarning
	hPath
	hServiceRoute
	hIdentity
	hCount
)

// canonical names, indexed by hid.
var headerNames = [hCount]string{
	hVia: "Via", hFrom: "From", hTo: "To", hCallID: "Call-ID", hCSeq: "CSeq",
	hMaxForwards: "Max-Forwards", hContact: "Contact", hRoute: "Route",
	hRecordRoute: "Record-Route", hContentLength: "Content-Length",
	hContentType: "Content-Type", hExpires: "Expires", hMinExpires: "Min-Expires",
	hWWWAuthenticate: "WWW-Authenticate", hProxyAuthenticate: "Proxy-Authenticate",
	hAuthorization: "Authorization", hProxyAuthorization: "Proxy-Authorization",
	hAllow: "Allow", hSupported: "Supported", hRequire: "Require",
	hProxyRequire: "Proxy-Require", hUnsupported: "Unsupported", hRSeq: "RSeq",
	hRAck: "RAck", hSessionExpires: "Session-Expires", hMinSE: "Min-SE",
	hReferTo: "Refer-To", hReferredBy: "Referred-By", hReplaces: "Replaces",
	hEvent: "Event", hSubscriptionState: "Subscription-State", hReason: "Reason",
	hRetryAfter: "Retry-After", hAccept: "Accept", hUserAgent: "User-Agent",
	hServer: "Server", hContentEncoding: "Content-Encoding", hSubject: "Subject",
	hAllowEvents: "Allow-Events", hTimestamp: "Timestamp",
	hContentDisposition: "Content-Disposition", hAcceptEncoding: "Accept-Encoding",
	hAcceptLanguage: "Accept-Language", hDate: "Date", hOrganization: "Organization",
	hPriority: "Priority", hWarning: "Warning", hPath: "Path",
	hServiceRoute: "Service-Route", hIdentity: "Identity",
}

// compact forms (RFC 3261 §7.3.3, RFC 3515, RFC 3892, RFC 4028, RFC 3265).
var compactIDs = [26]hid{
	'b' - 'a': hReferredBy,
	'c' - 'a': hContentType,
	'e' - 'a': hContentEncoding,
	'f' - 'a': hFrom,
	'i' - 'a': hCallID,
	'k' - 'a': hSupported,
	'l' - 'a': hContentLength,
	'm' - 'a': hContact,
	'o' - 'a': hEvent,
	'r' - 'a': hReferTo,
	's' - 'a': hSubject,
	't' - 'a': hTo,
	'u' - 'a': hAllowEvents,
	'v' - 'a': hVia,
	'x' - 'a': hSessionExpires,
	'y' - 'a': hIdentity,
}

// lookupID returns the hid of a header name, long or compact, in any case.
func lookupID(name string) hid {
	if len(name) == 1 {
		c := name[0] | 0x20
		if c >= 'a' && c <= 'z' {
			return compactIDs[c-'a']
		}
		return hOther
	}
	if len(name) == 0 {
		return hOther
	}
	// Dispatch on the first letter, then compare whole names.
	c := name[0] | 0x20
	if c < 'a' || c > 'z' {
		return hOther
	}
	cands := byFirstLetter[c-'a']
	for _, id := range cands {
		if equalFold(name, headerNames[id]) {
			return id
		}
	}
	return hOther
}

// byFirstLetter lists the known headers by the first letter of their long
// name.
var byFirstLetter = func() (t [26][]hid) {
	for id := hid(1); id < hCount; id++ {
		c := headerNames[id][0] | 0x20
		t[c-'a'] = append(t[c-'a'], id)
	}
	return t
}()

// CanonicalName returns the canonical spelling of a header name: the long
// form of a compact name ("v" → "Via") and the usual capitalisation of
// known names ("call-id" → "Call-ID"). Unknown names are returned as they
// are.
func CanonicalName(name string) string {
	if id := lookupID(name); id != hOther {
		return headerNames[id]
	}
	return name
}

// Field is one header field line: its name as written and its value with
// line folding replaced by single spaces and surrounding white space
// removed. A line may hold several comma-separated values.
type Field struct {
	Name  string
	Value string
	id    hid
}

// Header is the ordered list of a message's header fields. Names compare
// case-insensitively and compact forms match their long forms. Unknown
// fields are kept verbatim and in order. The zero value is empty and ready
// to use.
type Header struct {
	fields []Field
}

// Len returns the number of header field lines.
func (h *Header) Len() int { return len(h.fields) }

// Fields returns the header field lines in order. The slice belongs to h:
// do not modify it.
func (h *Header) Fields() []Field { return h.fields }

// index returns the position of the first field with id (or name for
// unknown ids), or -1.
func (h *Header) index(id hid, name string) int {
	for i := range h.fields {
		f := &h.fields[i]
		if f.id == id && (id != hOther || equalFold(f.Name, name)) {
			return i
		}
	}
	return -1
}

// Get returns the value of the first field called name (long or compact
// form), or "".
func (h *Header) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup returns the value of the first field called name and whether the
// message has such a field.
func (h *Header) Lookup(name string) (string, bool) {
	return h.get(lookupID(name), name)
}

func (h *Header) get(id hid, name string) (string, bool) {
	if i := h.index(id, name); i >= 0 {
		return h.fields[i].Value, true
	}
	return "", false
}

// Values iterates over the values of all fields called name, splitting
// comma-separated lists (commas inside quotes and angle brackets do not
// split). Use it for list headers (Via, Contact, Route, Allow, Supported …),
// not for headers whose values contain bare commas (Date,
// WWW-Authenticate).
func (h *Header) Values(name string) iter.Seq[string] {
	return h.values(lookupID(name), name)
}

func (h *Header) values(id hid, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range h.fields {
			f := &h.fields[i]
			if f.id != id || (id == hOther && !equalFold(f.Name, name)) {
				continue
			}
			stop := false
			splitList(f.Value, func(v string) bool {
				if !yield(v) {
					stop = true
					return false
				}
				return true
			})
			if stop {
				return
			}
		}
	}
}

// Count returns how many field lines are called name.
func (h *Header) Count(name string) int {
	return h.count(lookupID(name), name)
}

func (h *Header) count(id hid, name string) int {
	n := 0
	for i := range h.fields {
		if f := &h.fields[i]; f.id == id && (id != hOther || equalFold(f.Name, name)) {
			n++
		}
	}
	return n
}

// Has reports whether the message has a field called name.
func (h *Header) Has(name string) bool {
	_, ok := h.Lookup(name)
	return ok
}

// Add appends a field line.
func (h *Header) Add(name, value string) {
	h.fields = append(h.fields, Field{Name: name, Value: value, id: lookupID(name)})
}

// Prepend inserts a field line before all others (as a UA does with Via).
func (h *Header) Prepend(name, value string) {
	h.fields = append(h.fields, Field{})
	copy(h.fields[1:], h.fields)
	h.fields[0] = Field{Name: name, Value: value, id: lookupID(name)}
}

// Set replaces all fields called name by one line with value, at the
// position of the first of them, or appends it.
func (h *Header) Set(name, value string) {
	id := lookupID(name)
	i := h.index(id, name)
	if i < 0 {
		h.fields = append(h.fields, Field{Name: name, Value: value, id: id})
		return
	}
	h.fields[i] = Field{Name: name, Value: value, id: id}
	h.del(id, name, i+1)
}

// Del removes all fields called name.
func (h *Header) Del(name string) { h.del(lookupID(name), name, 0) }

func (h *Header) del(id hid, name string, from int) {
	out := h.fields[:from]
	for _, f := range h.fields[from:] {
		if f.id == id && (id != hOther || equalFold(f.Name, name)) {
			continue
		}
		out = append(out, f)
	}
	clear(h.fields[len(out):])
	h.fields = out
}

// Clone returns a deep copy of h.
func (h *Header) Clone() Header {
	return Header{fields: append([]Field(nil), h.fields...)}
}

// appendFields appends the header lines of h. When body is non-negative,
// Content-Length fields are written with that value, and one is added at
// the end if h has none.
func (h *Header) appendTo(b []byte, bodyLen int) []byte {
	wroteCL := false
	for i := range h.fields {
		f := &h.fields[i]
		b = append(b, f.Name...)
		b = append(b, ':', ' ')
		if f.id == hContentLength {
			if wroteCL {
				// Drop repeated Content-Length lines: only one may be sent.
				b = b[:len(b)-len(f.Name)-2]
				continue
			}
			wroteCL = true
			b = appendInt(b, bodyLen)
		} else {
			b = append(b, f.Value...)
		}
		b = append(b, '\r', '\n')
	}
	if !wroteCL {
		b = append(b, "Content-Length: "...)
		b = appendInt(b, bodyLen)
		b = append(b, '\r', '\n')
	}
	return b
}

func appendInt(b []byte, n int) []byte {
	if n >= 0 && n < 10 {
		return append(b, byte('0'+n))
	}
	var tmp [20]byte
	i := len(tmp)
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	for u > 0 {
		i--
		tmp[i] = byte('0' + u%10)
		u /= 10
	}
	if neg {
		i--
		tmp[i] = '-'
	}
	return append(b, tmp[i:]...)
}

// headerIsSingle reports whether a header may appear only once.
func headerIsSingle(id hid) bool {
	switch id {
	case hFrom, hTo, hCallID, hCSeq, hMaxForwards, hContentLength, hContentType, hExpires, hMinExpires, hRSeq, hRAck, hSessionExpires, hMinSE, hReferTo, hEvent, hSubscriptionState, hReplaces, hRetryAfter:
		return true
	}
	return false
}
