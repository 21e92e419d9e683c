package digest

import (
	"strconv"
)

// answer is one credentials value (RFC 7616 §3.4, RFC 3261 §25.1
// "digest-response").
type answer struct {
	username string // as sent: the plain name, or its hash with userhash
	userhash bool
	realm    string
	nonce    string
	uri      string
	algName  string // as the challenge spelled it; "" to omit
	qop      string // "" for the RFC 2069 form
	cnonce   string
	nc       uint32
	opaque   string
	response string
}

// ncString formats a nonce count as 8 hex digits.
func ncString(nc uint32) string {
	s := strconv.FormatUint(uint64(nc), 16)
	const zeros = "00000000"
	return zeros[len(s):] + s
}

// String returns the header field value.
func (a *answer) String() string {
	b := make([]byte, 0, 256)
	b = append(b, "Digest "...)
	b = appendParam(b, "username", a.username, true)
	b = appendParam(b, "realm", a.realm, true)
	b = appendParam(b, "nonce", a.nonce, true)
	b = appendParam(b, "uri", a.uri, true)
	b = appendParam(b, "response", a.response, true)
	if a.algName != "" {
		b = appendParam(b, "algorithm", a.algName, false)
	}
	if a.qop != "" {
		b = appendParam(b, "qop", a.qop, false)
		b = appendParam(b, "nc", ncString(a.nc), false)
		b = appendParam(b, "cnonce", a.cnonce, true)
	}
	if a.opaque != "" {
		b = appendParam(b, "opaque", a.opaque, true)
	}
	if a.userhash {
		b = appendParam(b, "userhash", "true", false)
	}
	return string(b)
}

// responseDigest computes the response parameter (RFC 7616 §3.4.1,
// RFC 2069 §2.1.2 when qop is empty) from H(A1).
func responseDigest(alg algorithm, ha1, nonce, nc, cnonce, qop, method, uri string, body []byte) string {
	var ha2 string
	if qop == "auth-int" {
		ha2 = alg.digest(method, uri, alg.digestBytes(body))
	} else {
		ha2 = alg.digest(method, uri)
	}
	if qop == "" {
		return alg.digest(ha1, nonce, ha2)
	}
	return alg.digest(ha1, nonce, nc, cnonce, qop, ha2)
}

// chooseQOP picks the qop to answer with: "auth" when offered, else
// "auth-int"; "" for a challenge without qop (RFC 2069), which the -sess
// algorithms cannot use (they need a cnonce).
func chooseQOP(offered []string, alg algorithm) (string, bool) {
	if offered == nil {
		return "", !alg.sess
	}
	var intOK bool
	for _, q := range offered {
		switch {
		case equalFoldASCII(q, "auth"):
			return "auth", true
		case equalFoldASCII(q, "auth-int"):
			intOK = true
		}
	}
	if intOK {
		return "auth-int", true
	}
	return "", false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
