package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipua/sip/message"
)

// ServerOptions configures a Server. Zero values select the documented
// defaults.
type ServerOptions struct {
	// Realm is the realm the server challenges for, e.g. "example.com".
	Realm string
	// Lookup returns the credentials of a user: the password, or an HA1
	// callback for servers that store H(username:realm:password) only. Its
	// Username field is not used. ok is false for an unknown user. It is
	// called without any lock held and may be called concurrently.
	Lookup func(username string) (creds Credentials, ok bool)
	// Algorithms lists the algorithms offered, one challenge each, in
	// order. Default: SHA-256, then MD5.
	Algorithms []string
	// QOP lists the qop values offered ("auth", "auth-int"). nil selects
	// "auth"; an empty non-nil slice offers no qop (RFC 2069 form): then
	// replays within the nonce lifetime cannot be detected, and the -sess
	// algorithms cannot be offered.
	QOP []string
	// Proxy makes the server a proxy: it challenges with
	// Proxy-Authenticate (send it in a 407) and verifies
	// Proxy-Authorization.
	Proxy bool
	// Opaque, if set, is sent in every challenge and must be echoed.
	Opaque string
	// NonceLifetime is how long a nonce is accepted; older ones are stale.
	// Default: 5 minutes.
	NonceLifetime time.Duration
	// Key is the HMAC key that protects nonces. Servers that share a key
	// accept each other's nonces. Default: 32 random bytes.
	Key []byte
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// maxNonces bounds the nonces whose counts a Server remembers.
const maxNonces = 10000

// Server issues digest challenges and verifies credentials, for tests and
// embedded registrars. Nonces carry their issue time and an HMAC, so no
// state is kept per challenge; the server remembers the highest nonce
// count seen per nonce (until the nonce expires) to refuse replays.
//
// A Server is safe for concurrent use.
type Server struct {
	opts     ServerOptions
	algs     []algorithm
	algNames []string
	qop      []string
	key      []byte

	mu     sync.Mutex
	counts map[string]nonceUse
	floor  int64 // nonces that expire at or before floor (Unix ns) are stale
}

type nonceUse struct {
	nc      uint32
	expires int64 // Unix ns
}

// NewServer returns a Server. It fails (with ErrUnsupported) for an
// unknown algorithm or qop, and when Lookup is nil.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Lookup == nil {
		return nil, fmt.Errorf("%w: ServerOptions.Lookup is nil", ErrUnsupported)
	}
	s := &Server{opts: opts, counts: make(map[string]nonceUse)}
	names := opts.Algorithms
	if names == nil {
		names = []string{"SHA-256", "MD5"}
	}
	for _, n := range names {
		a, ok := lookupAlgorithm(n)
		if !ok || n == "" {
			return nil, fmt.Errorf("%w: algorithm %q", ErrUnsupported, shorten(n))
		}
		s.algs = append(s.algs, a)
		s.algNames = append(s.algNames, a.name)
	}
	if len(s.algs) == 0 {
		return nil, fmt.Errorf("%w: no algorithm", ErrUnsupported)
	}
	switch {
	case opts.QOP == nil:
		s.qop = []string{"auth"}
	default:
		for _, q := range opts.QOP {
			if q != "auth" && q != "auth-int" {
				return nil, fmt.Errorf("%w: qop %q", ErrUnsupported, shorten(q))
			}
		}
		s.qop = append([]string{}, opts.QOP...)
	}
	if len(s.qop) == 0 {
		for _, a := range s.algs {
			if a.sess {
				return nil, fmt.Errorf("%w: %s needs a qop", ErrUnsupported, a.name)
			}
		}
	}
	if hasCTL(opts.Realm) || hasCTL(opts.Opaque) {
		return nil, fmt.Errorf("%w: control character in realm or opaque", ErrMalformed)
	}
	if s.opts.NonceLifetime <= 0 {
		s.opts.NonceLifetime = 5 * time.Minute
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	if len(opts.Key) > 0 {
		s.key = append([]byte(nil), opts.Key...)
	} else {
		s.key = make([]byte, 32)
		_, _ = rand.Read(s.key) // never fails (crypto/rand, Go ≥ 1.24)
	}
	return s, nil
}

// String returns a description without secrets.
func (s *Server) String() string {
	return fmt.Sprintf("digest.Server{Realm: %q, Algorithms: %v, QOP: %v, Proxy: %v}", s.opts.Realm, s.algNames, s.qop, s.opts.Proxy)
}

// Format implements fmt.Formatter: every verb prints String, so the key
// and the lookup never reach a log.
func (s *Server) Format(f fmt.State, verb rune) { writeRedacted(f, verb, s.String()) }

// Challenge adds the server's challenges to resp: one WWW-Authenticate
// (Proxy-Authenticate for a proxy) value per algorithm, sharing one new
// nonce. Set stale after Verify returned ErrStale. The caller sets the
// status code (401, or 407 for a proxy).
func (s *Server) Challenge(resp *message.Response, stale bool) {
	name := hWWWAuthenticate
	if s.opts.Proxy {
		name = hProxyAuthenticate
	}
	nonce := s.newNonce()
	for _, a := range s.algNames {
		ch := Challenge{Realm: s.opts.Realm, Nonce: nonce, Opaque: s.opts.Opaque, Algorithm: a, Stale: stale}
		if len(s.qop) > 0 {
			ch.QOP = s.qop
		}
		resp.Header.Add(name, ch.String())
	}
}

// Verify checks the Digest credentials for the server's realm in req and
// returns the authenticated username. Errors wrap:
//   - ErrNoCredentials: no credentials for the realm; answer with a
//     challenge (401/407).
//   - ErrStale: right credentials with an expired, unknown or replayed
//     nonce (count); challenge again with stale=true.
//   - ErrAuthFailed: wrong response, unknown user, wrong opaque or
//     digest-uri; challenge again (or 403).
//   - ErrUnsupported: an algorithm or userhash the server did not offer.
//   - ErrMalformed: unreadable credentials; 400.
func (s *Server) Verify(req *message.Request) (username string, err error) {
	name := credHeader(s.opts.Proxy)
	var cred *rawAuth
	var perr error
	for _, f := range req.Header.Fields() {
		if cred != nil {
			break
		}
		if message.CanonicalName(f.Name) != name {
			continue
		}
		list, err := parseAuthList(f.Value)
		if err != nil {
			perr = fmt.Errorf("%s: %w", name, err)
			continue
		}
		for i := range list {
			if r, _ := list[i].get("realm"); strings.EqualFold(list[i].scheme, "Digest") && r == s.opts.Realm {
				cred = &list[i]
				break
			}
		}
	}
	if cred == nil {
		if perr != nil {
			return "", perr
		}
		return "", fmt.Errorf("%w for realm %q", ErrNoCredentials, shorten(s.opts.Realm))
	}
	p, err := credentialParams(cred)
	if err != nil {
		return "", err
	}
	return s.verify(req, p)
}

// credParams are the parameters of Digest credentials.
type credParams struct {
	username, nonce, uri, response, algorithm, cnonce, nc, qop, opaque, userhash string
}

func credentialParams(r *rawAuth) (credParams, error) {
	var p credParams
	if r.token68 != "" {
		return p, malformed("Digest credentials without parameters")
	}
	seen := map[string]bool{}
	for _, a := range r.params {
		n := strings.ToLower(a.name)
		var dst *string
		switch n {
		case "username":
			dst = &p.username
		case "nonce":
			dst = &p.nonce
		case "uri":
			dst = &p.uri
		case "response":
			dst = &p.response
		case "algorithm":
			dst = &p.algorithm
		case "cnonce":
			dst = &p.cnonce
		case "nc":
			dst = &p.nc
		case "qop":
			dst = &p.qop
		case "opaque":
			dst = &p.opaque
		case "userhash":
			dst = &p.userhash
		case "realm":
		default:
			continue
		}
		if seen[n] {
			return p, malformed("repeated parameter %q", n)
		}
		seen[n] = true
		if dst != nil {
			*dst = a.value
		}
	}
	for _, n := range []string{"username", "nonce", "uri", "response"} {
		if !seen[n] {
			return p, malformed("credentials without %s", n)
		}
	}
	return p, nil
}

func (s *Server) verify(req *message.Request, p credParams) (string, error) {
	alg, ok := lookupAlgorithm(p.algorithm)
	offered := false
	for _, a := range s.algs {
		offered = offered || ok && a.name == alg.name
	}
	if !offered {
		return "", fmt.Errorf("%w: algorithm %q not offered", ErrUnsupported, shorten(p.algorithm))
	}
	if strings.EqualFold(p.userhash, "true") {
		return "", fmt.Errorf("%w: userhash not offered", ErrUnsupported)
	}
	qop := strings.ToLower(p.qop)
	var nc uint64
	if len(s.qop) == 0 {
		if qop != "" {
			return "", fmt.Errorf("%w: qop %q not offered", ErrAuthFailed, shorten(p.qop))
		}
	} else {
		found := false
		for _, q := range s.qop {
			found = found || q == qop
		}
		if !found {
			return "", fmt.Errorf("%w: qop %q not offered", ErrAuthFailed, shorten(p.qop))
		}
		var err error
		if nc, err = strconv.ParseUint(p.nc, 16, 32); err != nil || len(p.nc) != 8 || nc == 0 {
			return "", malformed("bad nonce count %q", shorten(p.nc))
		}
		if p.cnonce == "" {
			return "", malformed("credentials without cnonce")
		}
	}
	if s.opts.Opaque != "" && p.opaque != s.opts.Opaque {
		return "", fmt.Errorf("%w: opaque does not match", ErrAuthFailed)
	}
	if !sameURI(p.uri, req.URI) {
		return "", fmt.Errorf("%w: digest-uri %q is not the Request-URI", ErrAuthFailed, shorten(p.uri))
	}
	if !isHex(p.response, alg.hexLen()) {
		return "", malformed("response is not a %s digest", alg.base)
	}

	creds, ok := s.opts.Lookup(p.username)
	if !ok {
		return "", fmt.Errorf("%w: credentials rejected", ErrAuthFailed)
	}
	ha1, err := creds.ha1(alg, p.username, s.opts.Realm, p.nonce, p.cnonce)
	if err != nil {
		return "", err
	}
	want := responseDigest(alg, ha1, p.nonce, p.nc, p.cnonce, qop, req.Method, p.uri, req.Body)
	if !hmac.Equal([]byte(strings.ToLower(p.response)), []byte(want)) {
		return "", fmt.Errorf("%w: credentials rejected", ErrAuthFailed)
	}

	// The password was right; now the nonce must be fresh.
	expires, ok := s.checkNonce(p.nonce)
	now := s.opts.Now().UnixNano()
	if !ok {
		return "", fmt.Errorf("%w: nonce not issued by this server", ErrStale)
	}
	if expires <= now {
		return "", fmt.Errorf("%w: nonce expired", ErrStale)
	}
	if err := s.count(p.nonce, uint32(nc), expires, now); err != nil {
		return "", err
	}
	return p.username, nil
}

// count records nonce count nc for nonce and refuses a replay.
func (s *Server) count(nonce string, nc uint32, expires, now int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if expires <= s.floor {
		return fmt.Errorf("%w: nonce expired", ErrStale)
	}
	if nc == 0 { // no qop: nothing to count
		return nil
	}
	use, seen := s.counts[nonce]
	if seen && nc <= use.nc {
		return fmt.Errorf("%w: nonce count %08x replayed", ErrStale, nc)
	}
	if !seen && len(s.counts) >= maxNonces {
		s.prune(now)
	}
	s.counts[nonce] = nonceUse{nc: nc, expires: expires}
	return nil
}

// prune forgets expired nonces and, if still full, the older half, whose
// nonces then count as expired. s.mu must be held.
func (s *Server) prune(now int64) {
	lo, hi := int64(1<<63-1), int64(-1<<63)
	for n, u := range s.counts {
		if u.expires <= now {
			delete(s.counts, n)
			continue
		}
		lo, hi = min(lo, u.expires), max(hi, u.expires)
	}
	if len(s.counts) < maxNonces/2 {
		return
	}
	cut := lo + (hi-lo)/2
	for n, u := range s.counts {
		if u.expires <= cut {
			delete(s.counts, n)
		}
	}
	s.floor = max(s.floor, cut)
}

// Nonce layout: issue time (8 bytes, Unix ns), 8 random bytes, 16 bytes
// of HMAC-SHA-256 over both, the realm and the kind; base64url.
const (
	nonceRaw = 32
	nonceMAC = 16
)

func (s *Server) newNonce() string {
	var b [nonceRaw]byte
	binary.BigEndian.PutUint64(b[:8], uint64(s.opts.Now().UnixNano()))
	_, _ = rand.Read(b[8:16])
	copy(b[16:], s.mac(b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) mac(p []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write(p)
	if s.opts.Proxy {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	h.Write([]byte(s.opts.Realm))
	return h.Sum(nil)[:nonceMAC]
}

// checkNonce verifies a nonce's HMAC and returns its expiry (Unix ns).
func (s *Server) checkNonce(nonce string) (expires int64, ok bool) {
	if len(nonce) != base64.RawURLEncoding.EncodedLen(nonceRaw) {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceRaw {
		return 0, false
	}
	if !hmac.Equal(b[16:], s.mac(b[:16])) {
		return 0, false
	}
	issued := int64(binary.BigEndian.Uint64(b[:8]))
	return issued + int64(s.opts.NonceLifetime), true
}

// sameURI reports whether the digest-uri names the Request-URI.
func sameURI(digestURI string, reqURI message.URI) bool {
	if u, err := message.ParseURI(digestURI); err == nil {
		return u.Equal(reqURI)
	}
	return digestURI == reqURI.String()
}
