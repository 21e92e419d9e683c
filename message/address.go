package message

import "strings"

// Address is a name-addr or addr-spec with header parameters, as in From,
// To, Contact, Route, Record-Route, Refer-To and Referred-By (RFC 3261
// §20.10).
type Address struct {
	// DisplayName is the display name, unquoted, or "".
	DisplayName string
	// URI is the address.
	URI URI
	// Params are the header parameters after the URI (tag, expires, q …).
	Params Params
	// Wildcard is true for the Contact value "*" of a REGISTER that
	// removes all bindings; URI is then empty.
	Wildcard bool
}

// Tag returns the tag parameter, or "".
func (a Address) Tag() string { t, _ := a.Params.Get("tag"); return t }

// AppendTo appends the wire form of a, always in name-addr form.
func (a Address) AppendTo(b []byte) []byte {
	if a.Wildcard {
		b = append(b, '*')
	} else {
		if a.DisplayName != "" {
			b = appendQuoted(b, a.DisplayName)
			b = append(b, ' ')
		}
		b = append(b, '<')
		b = a.URI.AppendTo(b)
		b = append(b, '>')
	}
	if a.Params != "" {
		b = append(b, ';')
		b = append(b, a.Params...)
	}
	return b
}

// String returns the wire form of a.
func (a Address) String() string { return string(a.AppendTo(make([]byte, 0, 64))) }

// ParseAddress parses one name-addr or addr-spec with its parameters.
func ParseAddress(s string) (Address, error) {
	var a Address
	err := a.parse(s, "")
	return a, err
}

func addrError(hdr, s, what string) error {
	return errorf(ErrMalformed, hdr, "%q: %s", s, what)
}

func (a *Address) parse(s, hdr string) error {
	i := skipWS(s, 0)
	if i == len(s) {
		return addrError(hdr, s, "empty")
	}
	var uriStr string
	if s[i] == '*' && trimWS(s[i+1:]) == "" {
		a.Wildcard = true
		return nil
	}
	lt := -1
	if s[i] == '"' {
		e := quotedEnd(s, i)
		if e < 0 {
			return addrError(hdr, s, "unterminated quoted string")
		}
		a.DisplayName = unquote(s[i:e])
		i = skipWS(s, e)
		if i == len(s) || s[i] != '<' {
			return addrError(hdr, s, "no <URI> after display name")
		}
		lt = i
	} else {
		for j := i; j < len(s); j++ {
			if s[j] == '<' {
				lt = j
				break
			}
			if s[j] == '"' || s[j] == ';' {
				break
			}
		}
		if lt >= 0 {
			a.DisplayName = trimWS(s[i:lt])
		}
	}
	if lt >= 0 {
		gt := strings.IndexByte(s[lt:], '>')
		if gt < 0 {
			return addrError(hdr, s, "no closing >")
		}
		gt += lt
		uriStr = trimWS(s[lt+1 : gt])
		i = skipWS(s, gt+1)
	} else {
		// addr-spec: the URI ends at the first ';' (parameters belong to
		// the header) and may not contain '?' or ','.
		st := i
		for i < len(s) && s[i] != ';' && !isWS(s[i]) {
			i++
		}
		uriStr = s[st:i]
		if strings.ContainsAny(uriStr, "?,") {
			return addrError(hdr, s, "URI with '?' or ',' must be enclosed in <>")
		}
		i = skipWS(s, i)
	}
	if err := a.URI.parse(uriStr); err != nil {
		return addrError(hdr, s, "bad URI")
	}
	if i < len(s) {
		if s[i] != ';' {
			return addrError(hdr, s, "junk after URI")
		}
		p, ok := parseHeaderParams(s[i+1:])
		if !ok {
			return addrError(hdr, s, "bad parameter")
		}
		a.Params = p
	}
	return nil
}

// single returns the only field value with id, parsed as an address.
func (h *Header) address(id hid) (Address, error) {
	v, ok := h.get(id, "")
	if !ok {
		return Address{}, errorf(ErrMissingHeader, headerNames[id], "missing")
	}
	var a Address
	if err := a.parse(v, headerNames[id]); err != nil {
		return Address{}, err
	}
	return a, nil
}

func (h *Header) addresses(id hid) ([]Address, error) {
	var out []Address
	if err := h.parseAddresses(id, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// parseAddresses parses every value of the fields id, appending them to
// *out; with out nil it only checks them (Validate), allocating no slice.
func (h *Header) parseAddresses(id hid, out *[]Address) error {
	var err error
	for i := range h.fields {
		f := &h.fields[i]
		if f.id != id {
			continue
		}
		ok := splitList(f.Value, func(s string) bool {
			var a Address
			if err = a.parse(s, headerNames[id]); err != nil {
				return false
			}
			if out != nil {
				*out = append(*out, a)
			}
			return true
		})
		if err != nil {
			return err
		}
		if !ok {
			return addrError(headerNames[id], f.Value, "unbalanced quotes or brackets")
		}
	}
	return nil
}

// From returns the From address.
func (h *Header) From() (Address, error) { return h.address(hFrom) }

// To returns the To address.
func (h *Header) To() (Address, error) { return h.address(hTo) }

// FromTag returns the tag of From, or "" (also when From is malformed).
func (h *Header) FromTag() string { a, _ := h.From(); return a.Tag() }

// ToTag returns the tag of To, or "" (also when To is malformed).
func (h *Header) ToTag() string { a, _ := h.To(); return a.Tag() }

// Contacts returns all Contact values in order.
func (h *Header) Contacts() ([]Address, error) { return h.addresses(hContact) }

// Routes returns the Route set in order.
func (h *Header) Routes() ([]Address, error) { return h.addresses(hRoute) }

// RecordRoutes returns the Record-Route values in order.
func (h *Header) RecordRoutes() ([]Address, error) { return h.addresses(hRecordRoute) }

// ReferTo returns the Refer-To address (RFC 3515).
func (h *Header) ReferTo() (Address, error) { return h.address(hReferTo) }

// ReferredBy returns the Referred-By address (RFC 3892).
func (h *Header) ReferredBy() (Address, error) { return h.address(hReferredBy) }
