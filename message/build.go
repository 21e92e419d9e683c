package message

import (
	"bytes"
	"crypto/rand"
	"strconv"
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomToken returns n characters from crypto/rand, each from a 62-letter
// alphabet (about 5.95 bits each).
//
// A token never holds "CSeq": SIPp, the load generator SIP servers are
// usually measured with, finds a response's CSeq by looking for that
// string, so a To tag, Call-ID or branch holding it (about one 12-letter
// tag in 250 000) makes it abort the call. Such a token is drawn again.
func randomToken(n int) string {
	b := make([]byte, n)
	for {
		if _, err := rand.Read(b); err != nil {
			panic("sip: crypto/rand failed: " + err.Error())
		}
		if tokenFrom(b) {
			return string(b)
		}
	}
}

// tokenFrom maps the random bytes b to the alphabet in place and reports
// whether the token may be used.
func tokenFrom(b []byte) bool {
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return !bytes.Contains(b, cseqName)
}

var cseqName = []byte("CSeq")

// NewBranch returns a new branch parameter: the RFC 3261 magic cookie and
// 22 random characters (130 bits).
func NewBranch() string { return MagicCookie + randomToken(22) }

// NewTag returns a new From or To tag with 64 random bits or more.
func NewTag() string { return randomToken(12) }

// NewCallID returns a new Call-ID with 130 random bits. RFC 3261 allows a
// bare random word; no host is added, so no address leaks.
func NewCallID() string { return randomToken(22) }

// NewRequest returns a request with the fields every request needs (RFC
// 3261 §8.1.1): To, From with a new tag unless from has one, a new
// Call-ID, CSeq 1, and Max-Forwards 70. The transport layer adds Via.
func NewRequest(method string, uri URI, from, to Address) *Request {
	if from.Tag() == "" {
		from.Params = from.Params.Set("tag", NewTag())
	}
	r := &Request{Method: method, URI: uri}
	r.Header.fields = make([]Field, 0, 8)
	r.Header.Add("To", to.String())
	r.Header.Add("From", from.String())
	r.Header.Add("Call-ID", NewCallID())
	r.Header.Add("CSeq", "1 "+method)
	r.Header.Add("Max-Forwards", "70")
	return r
}

// inviteResponseRoom is the room NewResponse leaves for more header
// fields in a response to an INVITE (other than 100).
const inviteResponseRoom = 4

// NewResponse builds a response to req as a UAS does (RFC 3261 §8.2.6):
// Via lines, From, To, Call-ID and CSeq are copied, and for a status above
// 100 a To tag is added when To has none. toTag is that tag; pass the
// dialog's tag so that every response to one request carries the same one,
// or "" for a new random tag. A 100 Trying copies Timestamp. An empty
// reason selects the standard phrase. The response has no body.
func NewResponse(req *Request, code int, reason, toTag string) *Response {
	if reason == "" {
		reason = StatusText(code)
	}
	n := 0
	for i := range req.Header.fields {
		switch req.Header.fields[i].id {
		case hVia, hFrom, hTo, hCallID, hCSeq:
			n++
		}
	}
	// The response and its fields in one allocation, with room for the
	// fields a UAS adds (Server; to an INVITE, Contact, Allow and
	// Content-Type) without moving them.
	room := 2
	if code > 100 && req.Method == "INVITE" {
		room = inviteResponseRoom
	}
	r, fields := withFields[Response](n + room)
	r.StatusCode, r.Reason = code, reason
	r.Header.fields = fields[:0]
	for i := range req.Header.fields {
		f := req.Header.fields[i]
		switch f.id {
		case hVia, hFrom, hCallID, hCSeq:
		case hTo:
			if code > 100 {
				if to, err := ParseAddress(f.Value); err == nil && to.Tag() == "" {
					if toTag == "" {
						toTag = NewTag()
					}
					f.Value = f.Value + ";tag=" + toTag
				}
			}
		case hTimestamp:
			if code != 100 {
				continue
			}
		default:
			continue
		}
		// Responses are written with long header names.
		f.Name = headerNames[f.id]
		r.Header.fields = append(r.Header.fields, f)
	}
	return r
}

// StatusText returns the standard reason phrase of a status code, or
// "Unknown Status" with the class, e.g. for 499.
func StatusText(code int) string {
	if t, ok := statusText[code]; ok {
		return t
	}
	switch code / 100 {
	case 1:
		return "Provisional"
	case 2:
		return "Success"
	case 3:
		return "Redirection"
	case 4:
		return "Client Error"
	case 5:
		return "Server Error"
	case 6:
		return "Global Failure"
	}
	return "Status " + strconv.Itoa(code)
}

var statusText = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
	183: "Session Progress", 199: "Early Dialog Terminated",
	200: "OK", 202: "Accepted", 204: "No Notification",
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
	305: "Use Proxy", 380: "Alternative Service",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
	412: "Conditional Request Failed", 413: "Request Entity Too Large",
	414: "Request-URI Too Long", 415: "Unsupported Media Type",
	416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
	421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
	428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
	436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
	439: "First Hop Lacks Outbound Support", 470: "Consent Needed",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
	482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
	486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
	489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
	494: "Security Agreement Required",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
	513: "Message Too Large", 555: "Push Notification Service Not Supported",
	580: "Precondition Failure",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
	606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
}
