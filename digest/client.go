package digest

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sipua/sip/message"
)

// Limits of the client's per-realm memory.
const (
	// maxRealms bounds the realms a Client remembers; the least recently
	// used one is forgotten first.
	maxRealms = 32
	// maxStaleRetries bounds consecutive stale=true retries for one realm:
	// a server that keeps calling fresh nonces stale is refused.
	maxStaleRetries = 2
	// maxScopeURIs bounds the Request-URIs per realm that Preauthorize
	// sends credentials to; the oldest one is forgotten first.
	maxScopeURIs = 4
)

// Client answers digest challenges for one user agent.
//
// It remembers, per realm (and per kind: WWW or Proxy), the nonce it last
// used with its nonce count, and which request carried its credentials,
// so that it can tell a wrong password (the response to that very request
// challenges the realm again, without stale=true) from a first challenge
// or an expired nonce. It remembers at most 32 realms. With Preauthorize
// it reuses a realm's nonce for new requests to the same Request-URI
// (RFC 7616 §3.4.5), so that a registration refresh is not challenged
// again while the server accepts the nonce.
//
// A Client is safe for concurrent use, and its credential callbacks are
// never called with a lock held. The wrong-password detection remembers
// one request per realm, though: a UA that authorizes several requests in
// one realm at once may see a wrong password take one more round before
// ErrAuthFailed.
type Client struct {
	lookup func(realm string) (Credentials, error)
	// cnonce returns a new client nonce; tests inject fixed ones.
	cnonce func() string

	mu     sync.Mutex
	realms map[realmKey]*realmState
	clock  uint64 // LRU clock for realms
}

type realmKey struct {
	proxy bool
	realm string
}

// realmState is what a Client remembers about one realm.
type realmState struct {
	ch    Challenge // the challenge last answered
	alg   algorithm
	qop   string
	nonce string // the nonce last used, and its count
	nc    uint32
	// callID and cseq identify the last request that carried credentials
	// for the realm.
	callID string
	cseq   uint32
	// pre: that request carried credentials Preauthorize added, which a
	// challenge may refuse without meaning the password is wrong.
	pre   bool
	stale int // consecutive stale retries
	used  uint64
	// uris are the Request-URIs (most recent last) of requests answered
	// for the realm: Preauthorize answers new requests to them.
	uris []string
}

// NewClient returns a Client that answers every realm with creds. Use
// NewClientFunc to answer only the realms an account belongs to.
func NewClient(creds Credentials) *Client {
	return NewClientFunc(func(string) (Credentials, error) { return creds, nil })
}

// NewClientFunc returns a Client that asks lookup for the credentials of
// each challenged realm, for user agents with several accounts (e.g. one
// for the outbound proxy, one for the registrar) or with passwords that
// change. An error from lookup aborts Authorize and is returned wrapped.
func NewClientFunc(lookup func(realm string) (Credentials, error)) *Client {
	return &Client{
		lookup: lookup,
		cnonce: rand.Text,
		realms: make(map[realmKey]*realmState),
	}
}

// String returns a description without secrets.
func (c *Client) String() string {
	c.mu.Lock()
	n := len(c.realms)
	c.mu.Unlock()
	return fmt.Sprintf("digest.Client{realms: %d}", n)
}

// Format implements fmt.Formatter: every verb prints String, so the
// credentials the Client holds never reach a log.
func (c *Client) Format(f fmt.State, verb rune) { writeRedacted(f, verb, c.String()) }

// Reset forgets every nonce and realm the Client remembers.
func (c *Client) Reset() {
	c.mu.Lock()
	clear(c.realms)
	c.mu.Unlock()
}

// candidate is the challenge chosen for one realm.
type candidate struct {
	key   realmKey
	ch    Challenge
	alg   algorithm
	qop   string
	nc    uint32 // reserved nonce count
	retry bool   // a stale retry for the request that carried our answer
	carry bool   // not challenged again: credentials carried over
}

// Authorize adds Authorization / Proxy-Authorization headers to req (the
// new request the caller will send: same request with CSeq+1 and a new
// branch, which the caller builds) answering the challenges in resp (401
// or 407). It returns an error wrapping ErrAuthFailed (wrong credentials:
// rejected after one retry), ErrUnsupported (no challenge with a supported
// scheme/algorithm/qop), or a parse error (ErrMalformed).
//
// Per realm it answers the challenge with the strongest algorithm; it
// answers every realm it can, one header field each, and replaces
// credentials for those realms that req already carries. Credentials for
// a realm answered in the rejected request but not challenged again (a
// second proxy challenged, the first one accepted) are computed anew with
// the next nonce count, replacing those req carries, so that a server
// checking nonce counts does not see a replay. A realm whose
// challenges are all unsupported is skipped as long as another realm can
// be answered.
//
// resp must carry the Call-ID and CSeq of the rejected request; req must
// have a Call-ID and a CSeq. The digest-uri is req.URI, the method
// req.Method and, for qop=auth-int, the body req.Body: set the body
// before calling Authorize.
func (c *Client) Authorize(req *message.Request, resp *message.Response) error {
	if req == nil || resp == nil {
		return malformed("nil request or response")
	}
	if resp.StatusCode != 401 && resp.StatusCode != 407 {
		return malformed("status %d is not a challenge", resp.StatusCode)
	}
	respCallID := resp.Header.CallID()
	respCSeq, err := resp.Header.CSeq()
	if err != nil || respCallID == "" {
		return malformed("response without Call-ID or CSeq")
	}
	reqCallID := req.Header.CallID()
	reqCSeq, err := req.Header.CSeq()
	if err != nil || reqCallID == "" {
		return malformed("request without Call-ID or CSeq")
	}
	uri := req.URI.String()
	if hasCTL(uri) {
		return malformed("control character in the Request-URI")
	}

	chs, others, perr := collectChallenges(resp)
	cands := pickChallenges(chs)
	if len(cands) == 0 {
		if perr != nil {
			return fmt.Errorf("digest: no usable challenge: %w", perr)
		}
		return unsupported(chs, others)
	}

	// Check for rejected credentials and reserve nonce counts.
	c.mu.Lock()
	var failed []string
	answered := make(map[realmKey]bool, len(cands))
	for i := range cands {
		cd := &cands[i]
		answered[cd.key] = true
		st := c.realms[cd.key]
		if st != nil && st.callID == respCallID && st.cseq == respCSeq.Seq && !st.pre {
			// The rejected request carried our answer for this realm.
			if !cd.ch.Stale || cd.ch.Nonce == st.nonce || st.stale >= maxStaleRetries {
				failed = append(failed, cd.key.realm)
				continue
			}
			cd.retry = true
		}
		cd.nc = c.reserve(cd.key, st, cd.ch.Nonce)
	}
	if len(failed) == 0 {
		// Realms answered in the rejected request and not challenged again.
		for key, st := range c.realms {
			if answered[key] || st.callID != respCallID || st.cseq != respCSeq.Seq {
				continue
			}
			cd := candidate{key: key, ch: st.ch, alg: st.alg, qop: st.qop, carry: true}
			cd.nc = c.reserve(key, st, st.ch.Nonce)
			cands = append(cands, cd)
		}
	}
	c.mu.Unlock()
	if len(failed) > 0 {
		return fmt.Errorf("%w: credentials for realm %q rejected", ErrAuthFailed, shorten(strings.Join(failed, `", "`)))
	}

	// Compute the answers; callbacks run without the lock.
	values := make([]string, len(cands))
	for i := range cands {
		v, err := c.answer(&cands[i], req.Method, uri, req.Body)
		if err != nil {
			return err
		}
		values[i] = v
	}

	for i := range cands {
		cd := &cands[i]
		name := credHeader(cd.key.proxy)
		removeCredentials(&req.Header, name, cd.key.realm)
		req.Header.Add(name, values[i])
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range cands {
		cd := &cands[i]
		st := c.realms[cd.key]
		if st == nil {
			st = &realmState{nonce: cd.ch.Nonce, nc: cd.nc}
			c.realms[cd.key] = st
		}
		if !cd.carry {
			st.ch, st.alg, st.qop = cd.ch, cd.alg, cd.qop
			if cd.retry {
				st.stale++
			} else {
				st.stale = 0
			}
		}
		// Credentials carried over from preemptive ones stay preemptive.
		st.pre = cd.carry && st.pre
		st.callID, st.cseq = reqCallID, reqCSeq.Seq
		st.addURI(uri)
		c.clock++
		st.used = c.clock
	}
	c.evict()
	return nil
}

// Preauthorize adds credentials to req, a new request (not a resent
// one), for the realms whose last challenge it can answer again without
// asking the server (RFC 7616 §3.4.5): the nonce last used for the realm
// with the next nonce count and a fresh client nonce. It reports whether
// it added any.
//
// It answers a realm only when the challenge offered qop=auth (a nonce
// count means nothing without qop), and only for a request whose
// Request-URI is one of the last four that the realm's credentials
// answered: a registrar's refresh REGISTER, a repeated MESSAGE to one
// target. It never answers ACK or CANCEL, and skips realms req already
// carries credentials for.
//
// A server that refuses such credentials (nonce expired or forgotten,
// nonce count out of its window) challenges the request again: Authorize
// then answers that challenge as a first one, so the request goes on
// with the server's new nonce, and only a refusal of that answer is
// ErrAuthFailed.
//
// An error from the credentials lookup is returned wrapped; req then
// carries no new credentials.
func (c *Client) Preauthorize(req *message.Request) (bool, error) {
	if req == nil || req.Method == "ACK" || req.Method == "CANCEL" {
		return false, nil
	}
	callID := req.Header.CallID()
	cseq, err := req.Header.CSeq()
	if err != nil || callID == "" {
		return false, malformed("request without Call-ID or CSeq")
	}
	uri := req.URI.String()
	c.mu.Lock()
	var cands []candidate
	for key, st := range c.realms {
		if st.qop != "auth" || st.nonce == "" || st.nonce != st.ch.Nonce || st.nc == 0xffffffff ||
			!slices.Contains(st.uris, uri) || hasCredentials(&req.Header, credHeader(key.proxy), key.realm) {
			continue
		}
		st.nc++
		cands = append(cands, candidate{key: key, ch: st.ch, alg: st.alg, qop: st.qop, nc: st.nc})
	}
	c.mu.Unlock()
	if len(cands) == 0 {
		return false, nil
	}
	// Map order is random: answer realms in a stable order.
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.key.proxy != b.key.proxy {
			if a.key.proxy {
				return 1
			}
			return -1
		}
		return strings.Compare(a.key.realm, b.key.realm)
	})
	values := make([]string, len(cands))
	for i := range cands {
		v, err := c.answer(&cands[i], req.Method, uri, req.Body)
		if err != nil {
			return false, err
		}
		values[i] = v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range cands {
		cd := &cands[i]
		req.Header.Add(credHeader(cd.key.proxy), values[i])
		st := c.realms[cd.key]
		if st == nil {
			continue // forgotten meanwhile (Reset, eviction): nothing to record
		}
		st.callID, st.cseq, st.pre = callID, cseq.Seq, true
		c.clock++
		st.used = c.clock
	}
	return true, nil
}

// addURI records uri as answered for the realm, keeping the last
// maxScopeURIs.
func (st *realmState) addURI(uri string) {
	if i := slices.Index(st.uris, uri); i >= 0 {
		st.uris = slices.Delete(st.uris, i, i+1)
	}
	if len(st.uris) >= maxScopeURIs {
		st.uris = slices.Delete(st.uris, 0, 1)
	}
	st.uris = append(st.uris, uri)
}

// reserve returns the nonce count to use with nonce for key and records
// it. c.mu must be held.
func (c *Client) reserve(key realmKey, st *realmState, nonce string) uint32 {
	if st == nil {
		st = &realmState{}
		c.realms[key] = st
		c.clock++
		st.used = c.clock
	}
	if st.nonce == nonce && st.nc < 0xffffffff {
		st.nc++
	} else {
		st.nonce, st.nc = nonce, 1
	}
	return st.nc
}

// evict forgets the least recently used realms beyond maxRealms. c.mu
// must be held.
func (c *Client) evict() {
	for len(c.realms) > maxRealms {
		var oldest realmKey
		var least uint64 = 1<<64 - 1
		for k, st := range c.realms {
			if st.used < least {
				oldest, least = k, st.used
			}
		}
		delete(c.realms, oldest)
	}
}

// answer computes the credentials value for one candidate.
func (c *Client) answer(cd *candidate, method, uri string, body []byte) (string, error) {
	creds, err := c.lookup(cd.key.realm)
	if err != nil {
		return "", fmt.Errorf("digest: credentials for realm %q: %w", shorten(cd.key.realm), err)
	}
	if hasCTL(creds.Username) {
		return "", malformed("control character in the username")
	}
	a := answer{
		username: creds.Username,
		realm:    cd.ch.Realm,
		nonce:    cd.ch.Nonce,
		uri:      uri,
		algName:  cd.ch.Algorithm,
		qop:      cd.qop,
		nc:       cd.nc,
		opaque:   cd.ch.Opaque,
	}
	if cd.qop != "" {
		a.cnonce = c.cnonce()
	}
	ha1, err := creds.ha1(cd.alg, creds.Username, a.realm, a.nonce, a.cnonce)
	if err != nil {
		return "", err
	}
	a.response = responseDigest(cd.alg, ha1, a.nonce, ncString(a.nc), a.cnonce, a.qop, method, uri, body)
	if cd.ch.Userhash {
		// RFC 7616 §3.4.4: the hash of the name is computed last; H(A1)
		// above uses the plain name.
		a.username = cd.alg.digest(creds.Username, a.realm)
		a.userhash = true
	}
	return a.String(), nil
}

// pickChallenges chooses, per realm and kind, the challenge to answer:
// supported algorithm and qop, strongest algorithm, first of equals.
// Realms are returned in the order they first appear.
func pickChallenges(chs []Challenge) []candidate {
	var out []candidate
	for _, ch := range chs {
		alg, ok := lookupAlgorithm(ch.Algorithm)
		if !ok {
			continue
		}
		qop, ok := chooseQOP(ch.QOP, alg)
		if !ok {
			continue
		}
		cd := candidate{key: realmKey{proxy: ch.Proxy, realm: ch.Realm}, ch: ch, alg: alg, qop: qop}
		i := 0
		for i < len(out) && out[i].key != cd.key {
			i++
		}
		switch {
		case i == len(out):
			out = append(out, cd)
		case alg.rank > out[i].alg.rank:
			out[i] = cd
		}
	}
	return out
}

// unsupported describes why no challenge could be answered.
func unsupported(chs []Challenge, others []string) error {
	var what []string
	for _, s := range others {
		what = append(what, fmt.Sprintf("scheme %q", s))
	}
	for _, ch := range chs {
		what = append(what, fmt.Sprintf("Digest algorithm %q qop %q", shorten(ch.Algorithm), shorten(strings.Join(ch.QOP, ","))))
	}
	if len(what) == 0 {
		return fmt.Errorf("%w: response has no challenge", ErrUnsupported)
	}
	return fmt.Errorf("%w: %s", ErrUnsupported, strings.Join(what, "; "))
}

// credHeader returns the header field that answers a challenge.
func credHeader(proxy bool) string {
	if proxy {
		return hProxyAuthorization
	}
	return hAuthorization
}

// credentialsRealm returns the realm of a Digest credentials value.
func credentialsRealm(value string) (string, bool) {
	list, err := parseAuthList(value)
	if err != nil || len(list) != 1 || !strings.EqualFold(list[0].scheme, "Digest") {
		return "", false
	}
	return list[0].get("realm")
}

// hasCredentials reports whether the header field name carries Digest
// credentials for realm.
func hasCredentials(h *message.Header, name, realm string) bool {
	for _, f := range h.Fields() {
		if message.CanonicalName(f.Name) != name {
			continue
		}
		if r, ok := credentialsRealm(f.Value); ok && r == realm {
			return true
		}
	}
	return false
}

// removeCredentials removes the Digest credentials for realm from the
// header field name, keeping its other values.
func removeCredentials(h *message.Header, name, realm string) {
	var keep []string
	found := false
	for _, f := range h.Fields() {
		if message.CanonicalName(f.Name) != name {
			continue
		}
		if r, ok := credentialsRealm(f.Value); ok && r == realm {
			found = true
			continue
		}
		keep = append(keep, f.Value)
	}
	if !found {
		return
	}
	h.Del(name)
	for _, v := range keep {
		h.Add(name, v)
	}
}
