package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"
)

// algorithm describes one digest algorithm (RFC 7616 §3.2, RFC 8760 §2).
type algorithm struct {
	// name is the canonical spelling, e.g. "SHA-256-sess".
	name string
	// base is the hash algorithm without "-sess", e.g. "SHA-256": the name
	// Credentials.HA1 receives.
	base string
	// newHash returns the hash function.
	newHash func() hash.Hash
	// sess reports a session variant: H(A1) also covers nonce and cnonce.
	sess bool
	// rank orders algorithms by strength: higher is stronger.
	rank int
}

// lookupAlgorithm returns the algorithm called name (case-insensitive).
// An empty name is MD5, the default of RFC 2617 and RFC 3261.
func lookupAlgorithm(name string) (algorithm, bool) {
	base, sess := name, false
	if len(name) > 5 && strings.EqualFold(name[len(name)-5:], "-sess") {
		base, sess = name[:len(name)-5], true
	}
	var a algorithm
	switch {
	case base == "" && !sess, strings.EqualFold(base, "MD5"):
		a = algorithm{base: "MD5", newHash: md5.New, rank: 1}
	case strings.EqualFold(base, "SHA-256"):
		a = algorithm{base: "SHA-256", newHash: sha256.New, rank: 2}
	case strings.EqualFold(base, "SHA-512-256"):
		a = algorithm{base: "SHA-512-256", newHash: sha512.New512_256, rank: 3}
	default:
		return algorithm{}, false
	}
	a.sess = sess
	a.name = a.base
	if sess {
		a.name += "-sess"
	}
	return a, true
}

// hexLen is the length of a hex digest of the algorithm.
func (a algorithm) hexLen() int { return 2 * a.newHash().Size() }

// digest returns the lower-case hex hash of the parts joined by ':'.
func (a algorithm) digest(parts ...string) string {
	h := a.newHash()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// digestBytes returns the lower-case hex hash of b.
func (a algorithm) digestBytes(b []byte) string {
	h := a.newHash()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// isHex reports whether s is n hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
