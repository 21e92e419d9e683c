// Package presence builds and parses the bodies of the SIP presence and
// dialog event packages: PIDF documents (RFC 3863, application/pidf+xml,
// event "presence", RFC 3856) and dialog-info documents (RFC 4235,
// application/dialog-info+xml, event "dialog", the busy-lamp field of
// desk phones). Use them with sip.Publisher (PUBLISH, RFC 3903) and
// sip.Subscriber (SUBSCRIBE/NOTIFY, RFC 6665).
//
// Parsing is lenient where the RFCs allow extensions (elements and
// attributes of other namespaces are skipped) and strict on what it
// returns: a document that is not well-formed XML, whose root is not the
// expected element, or that is larger than MaxBodySize fails with an error
// wrapping ErrMalformed or ErrTooLarge. Marshalling escapes every value.
package presence

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Content types and event package names.
const (
	// PIDFContentType is the media type of a PIDF document.
	PIDFContentType = "application/pidf+xml"
	// DialogInfoContentType is the media type of a dialog-info document.
	DialogInfoContentType = "application/dialog-info+xml"
	// EventPresence is the presence event package (RFC 3856).
	EventPresence = "presence"
	// EventDialog is the dialog event package (RFC 4235).
	EventDialog = "dialog"
)

// MaxBodySize bounds the documents the parsers accept.
const MaxBodySize = 64 << 10

var (
	// ErrMalformed reports a body that is not a well-formed document of
	// the expected kind.
	ErrMalformed = errors.New("presence: malformed document")
	// ErrTooLarge reports a body larger than MaxBodySize.
	ErrTooLarge = errors.New("presence: document too large")
	// ErrInvalid reports a value that cannot be marshalled (e.g. an
	// empty entity, or a basic status other than open and closed).
	ErrInvalid = errors.New("presence: invalid value")
)

// Basic is a PIDF tuple's basic status.
type Basic string

// The basic statuses of RFC 3863 §4.1.4.
const (
	Open   Basic = "open"
	Closed Basic = "closed"
)

// PIDF is a presence document (RFC 3863).
type PIDF struct {
	// Entity is the presentity's URI, e.g. "sip:alice@example.com".
	Entity string
	// Tuples are the presentity's services or devices.
	Tuples []Tuple
	// Notes are free-text notes about the presentity.
	Notes []string
}

// Tuple is one PIDF tuple.
type Tuple struct {
	// ID identifies the tuple within the document (an XML ID: a letter
	// or underscore first). Marshal makes one up when empty.
	ID string
	// Basic is the status: Open or Closed. Empty when the tuple has no
	// basic status (parsing only; Marshal requires one).
	Basic Basic
	// Contact is the URI to reach the service (optional); Priority its
	// priority attribute, 0 to 1 (empty when absent).
	Contact  string
	Priority string
	// Note is the tuple's first note (optional).
	Note string
}

// Open reports whether any tuple is open: the presentity is available.
func (p *PIDF) Open() bool {
	for _, t := range p.Tuples {
		if t.Basic == Open {
			return true
		}
	}
	return false
}

// NewPIDF returns a document for entity with one tuple of status basic
// and an optional note.
func NewPIDF(entity string, basic Basic, note string) *PIDF {
	return &PIDF{Entity: entity, Tuples: []Tuple{{ID: "t1", Basic: basic, Note: note}}}
}

type xmlNote struct {
	Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr,omitempty"`
	Text string `xml:",chardata"`
}

type xmlContact struct {
	Priority string `xml:"priority,attr,omitempty"`
	URI      string `xml:",chardata"`
}

type xmlTuple struct {
	ID      string      `xml:"id,attr"`
	Basic   string      `xml:"urn:ietf:params:xml:ns:pidf status>basic"`
	Contact *xmlContact `xml:"urn:ietf:params:xml:ns:pidf contact"`
	Notes   []xmlNote   `xml:"urn:ietf:params:xml:ns:pidf note"`
}

type xmlPresence struct {
	XMLName xml.Name   `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity  string     `xml:"entity,attr"`
	Tuples  []xmlTuple `xml:"urn:ietf:params:xml:ns:pidf tuple"`
	Notes   []xmlNote  `xml:"urn:ietf:params:xml:ns:pidf note"`
}

// Marshal returns the document as application/pidf+xml.
func (p *PIDF) Marshal() ([]byte, error) {
	if p.Entity == "" {
		return nil, fmt.Errorf("%w: PIDF without entity", ErrInvalid)
	}
	doc := xmlPresence{Entity: p.Entity}
	for i, t := range p.Tuples {
		if t.Basic != Open && t.Basic != Closed {
			return nil, fmt.Errorf("%w: basic status %q (want open or closed)", ErrInvalid, t.Basic)
		}
		xt := xmlTuple{ID: t.ID, Basic: string(t.Basic)}
		if xt.ID == "" {
			xt.ID = fmt.Sprintf("t%d", i+1)
		}
		if t.Contact != "" {
			xt.Contact = &xmlContact{URI: t.Contact, Priority: t.Priority}
		}
		if t.Note != "" {
			xt.Notes = []xmlNote{{Text: t.Note}}
		}
		doc.Tuples = append(doc.Tuples, xt)
	}
	for _, n := range p.Notes {
		doc.Notes = append(doc.Notes, xmlNote{Text: n})
	}
	return marshal(doc)
}

// ParsePIDF parses an application/pidf+xml body.
func ParsePIDF(body []byte) (*PIDF, error) {
	var doc xmlPresence
	if err := unmarshal(body, &doc); err != nil {
		return nil, err
	}
	p := &PIDF{Entity: doc.Entity}
	for _, t := range doc.Tuples {
		tu := Tuple{ID: t.ID, Basic: Basic(bytes.TrimSpace([]byte(t.Basic)))}
		if t.Contact != nil {
			tu.Contact = string(bytes.TrimSpace([]byte(t.Contact.URI)))
			tu.Priority = t.Contact.Priority
		}
		if len(t.Notes) > 0 {
			tu.Note = t.Notes[0].Text
		}
		p.Tuples = append(p.Tuples, tu)
	}
	for _, n := range doc.Notes {
		p.Notes = append(p.Notes, n.Text)
	}
	return p, nil
}

// marshal writes v with an XML declaration.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// unmarshal decodes body into v, whose XMLName names the root expected.
func unmarshal(body []byte, v any) error {
	if len(body) > MaxBodySize {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(body), MaxBodySize)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: empty body", ErrMalformed)
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	// Only UTF-8 (and its subset US-ASCII) is accepted, as RFC 3863 and
	// RFC 4235 documents use.
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch charset {
		case "UTF-8", "utf-8", "US-ASCII", "us-ascii":
			return input, nil
		}
		return nil, fmt.Errorf("charset %q", charset)
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// Nothing but whitespace, comments and processing instructions may
	// follow the root element.
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("%w: text after the root element", ErrMalformed)
			}
		case xml.Comment, xml.ProcInst:
		default:
			return fmt.Errorf("%w: content after the root element", ErrMalformed)
		}
	}
}
