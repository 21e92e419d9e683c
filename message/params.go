package message

import (
	"iter"
	"strings"
)

// Params is a parameter list in its wire form without the leading
// semicolon, e.g. "branch=z9hG4bK776;rport". Names compare
// case-insensitively. Values are kept as written: a quoted value keeps its
// quotes (see Unquote) and URI parameters keep their %-escapes. The zero
// value is an empty list. Params is a string, so reading it allocates
// nothing.
type Params string

// Get returns the value of the first parameter called name and whether it
// is present. A parameter without a value ("lr") is present with value "".
func (p Params) Get(name string) (string, bool) {
	s := string(p)
	for s != "" {
		var item string
		if i := indexParamEnd(s); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			item, s = s, ""
		}
		n, v := item, ""
		if eq := strings.IndexByte(item, '='); eq >= 0 {
			n, v = item[:eq], item[eq+1:]
		}
		if equalFold(n, name) {
			return v, true
		}
	}
	return "", false
}

// indexParamEnd returns the index of the ';' ending the first parameter of
// s, skipping quoted strings, or -1.
func indexParamEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ';':
			return i
		case '"':
			e := quotedEnd(s, i)
			if e < 0 {
				return -1
			}
			i = e - 1
		}
	}
	return -1
}

// Has reports whether a parameter called name is present.
func (p Params) Has(name string) bool {
	_, ok := p.Get(name)
	return ok
}

// All iterates over the parameters in order, yielding name and value.
func (p Params) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		s := string(p)
		for s != "" {
			var item string
			if i := indexParamEnd(s); i >= 0 {
				item, s = s[:i], s[i+1:]
			} else {
				item, s = s, ""
			}
			n, v := item, ""
			if eq := strings.IndexByte(item, '='); eq >= 0 {
				n, v = item[:eq], item[eq+1:]
			}
			if !yield(n, v) {
				return
			}
		}
	}
}

// Len returns the number of parameters.
func (p Params) Len() int {
	n := 0
	for range p.All() {
		n++
	}
	return n
}

// Set returns p with parameter name set to value, replacing the first
// parameter of that name or appending one. An empty value gives a
// parameter without "=value".
func (p Params) Set(name, value string) Params {
	var b strings.Builder
	b.Grow(len(p) + len(name) + len(value) + 2)
	done := false
	for n, v := range p.All() {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		if !done && equalFold(n, name) {
			n, v, done = name, value, true
		}
		b.WriteString(n)
		if v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	if !done {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
		if value != "" {
			b.WriteByte('=')
			b.WriteString(value)
		}
	}
	return Params(b.String())
}

// Del returns p without any parameter called name.
func (p Params) Del(name string) Params {
	if !p.Has(name) {
		return p
	}
	var b strings.Builder
	for n, v := range p.All() {
		if equalFold(n, name) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(n)
		if v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return Params(b.String())
}

// Unquote returns a parameter value without its surrounding quotes and
// backslash escapes; an unquoted value is returned as it is.
func Unquote(v string) string { return unquote(v) }

// parseHeaderParams parses the generic-param list that follows a ';' in a
// header value (Via, From, To, Contact …): s starts after the first ';'.
// It accepts linear white space around ';' and '=' and returns the list in
// its compact form, allocating only when white space had to be removed.
func parseHeaderParams(s string) (Params, bool) {
	clean := !hasWS(s)
	var b []byte
	if !clean {
		b = make([]byte, 0, len(s))
	}
	i := 0
	for {
		i = skipWS(s, i)
		ns := i
		for i < len(s) && charClass[s[i]]&cToken != 0 {
			i++
		}
		if i == ns {
			return "", false
		}
		name := s[ns:i]
		value := ""
		i = skipWS(s, i)
		if i < len(s) && s[i] == '=' {
			i = skipWS(s, i+1)
			vs := i
			if i < len(s) && s[i] == '"' {
				e := quotedEnd(s, i)
				if e < 0 {
					return "", false
				}
				i = e
			} else {
				for i < len(s) && s[i] != ';' && s[i] != ',' && !isWS(s[i]) && s[i] != '"' && s[i] != '<' && s[i] != '>' {
					i++
				}
			}
			if i == vs {
				return "", false
			}
			value = s[vs:i]
			i = skipWS(s, i)
		}
		if !clean {
			if len(b) > 0 {
				b = append(b, ';')
			}
			b = append(b, name...)
			if value != "" {
				b = append(b, '=')
				b = append(b, value...)
			}
		}
		if i == len(s) {
			break
		}
		if s[i] != ';' {
			return "", false
		}
		i++
	}
	if clean {
		return Params(s), true
	}
	return Params(b), true
}
