package rtp

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// SRTPPolicy says whether a handler protects its media with SDES-SRTP
// (RFC 3711 keyed by RFC 4568 a=crypto lines in the SDP).
type SRTPPolicy uint8

// The SRTP policies.
const (
	// SRTPOff: plain RTP. Offers carry no a=crypto; an offer in RTP/SAVP
	// is refused (488), one in RTP/AVP with a=crypto is answered in
	// plain RTP.
	SRTPOff SRTPPolicy = iota
	// SRTPOffer: SRTP when the peer takes it, plain RTP otherwise. The
	// offer is RTP/AVP with a=crypto lines (what RFC 5939's
	// capability negotiation reduces to in practice, "best-effort SRTP"):
	// a peer that knows SDES answers with a=crypto and the media are
	// SRTP, one that does not ignores them and answers plain RTP/AVP, so
	// no second offer is needed. Offers in RTP/SAVP and offers in RTP/AVP
	// with a=crypto are answered with SRTP, plain offers with RTP.
	SRTPOffer
	// SRTPRequired: SRTP or nothing. The offer is RTP/SAVP with a=crypto;
	// an answer or offer without a usable a=crypto is not acceptable.
	SRTPRequired
)

// String returns "off", "offer" or "required".
func (p SRTPPolicy) String() string {
	switch p {
	case SRTPOff:
		return "off"
	case SRTPOffer:
		return "offer"
	case SRTPRequired:
		return "required"
	}
	return "SRTPPolicy(" + strconv.Itoa(int(p)) + ")"
}

// SRTPSuite is an SDES crypto suite, named as a=crypto writes it.
type SRTPSuite string

// The crypto suites this package speaks (pion/srtp).
const (
	// SRTPAES128SHA80 is AES_CM_128_HMAC_SHA1_80 (RFC 4568 §6.2.1), the
	// suite every SDES peer has.
	SRTPAES128SHA80 SRTPSuite = "AES_CM_128_HMAC_SHA1_80"
	// SRTPAES128SHA32 is AES_CM_128_HMAC_SHA1_32: a 32-bit RTP
	// authentication tag.
	SRTPAES128SHA32 SRTPSuite = "AES_CM_128_HMAC_SHA1_32"
	// SRTPAEADAES128GCM is AEAD_AES_128_GCM (RFC 7714 §12).
	SRTPAEADAES128GCM SRTPSuite = "AEAD_AES_128_GCM"
)

var defaultSuites = []SRTPSuite{SRTPAES128SHA80, SRTPAES128SHA32, SRTPAEADAES128GCM}

// suiteInfo returns a suite's pion profile.
func suiteInfo(s SRTPSuite) (srtp.ProtectionProfile, bool) {
	switch s {
	case SRTPAES128SHA80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, true
	case SRTPAES128SHA32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32, true
	case SRTPAEADAES128GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, true
	}
	return 0, false
}

// keyLen returns the length of a suite's master key and salt together.
func keyLen(s SRTPSuite) int {
	p, _ := suiteInfo(s)
	k, _ := p.KeyLen()
	salt, _ := p.SaltLen()
	return k + salt
}

// cryptoAttr is one a=crypto line (RFC 4568 §9.1) of a suite we have.
type cryptoAttr struct {
	tag   int
	suite SRTPSuite
	key   []byte // master key then master salt
}

// value returns the line's attribute value. It carries the key: never log it.
func (c cryptoAttr) value() string {
	return strconv.Itoa(c.tag) + " " + string(c.suite) + " inline:" + base64.StdEncoding.EncodeToString(c.key)
}

// parseCrypto reads an a=crypto value, keeping it when its suite is one
// of suites and it uses nothing this package lacks: a single key, no MKI,
// no session parameters.
func parseCrypto(v string, suites []SRTPSuite) (cryptoAttr, bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return cryptoAttr{}, false
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return cryptoAttr{}, false
	}
	suite := SRTPSuite(strings.ToUpper(f[1]))
	known := false
	for _, s := range suites {
		known = known || s == suite
	}
	if !known || strings.Contains(f[2], ";") { // several keys
		return cryptoAttr{}, false
	}
	method, params, ok := strings.Cut(f[2], ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return cryptoAttr{}, false
	}
	b64, rest, _ := strings.Cut(params, "|")
	for _, p := range strings.Split(rest, "|") {
		if strings.Contains(p, ":") { // an MKI
			return cryptoAttr{}, false
		}
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	}
	if err != nil || len(key) != keyLen(suite) {
		return cryptoAttr{}, false
	}
	return cryptoAttr{tag: tag, suite: suite, key: key}, true
}

// newKey returns fresh key material for a suite.
func newKey(s SRTPSuite) ([]byte, error) {
	k := make([]byte, keyLen(s))
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("rtp: SRTP key: %w", err)
	}
	return k, nil
}

// sdes is the SRTP keying an exchange settled: the suite, our key (what
// we send with) and the peer's (what it sends with).
type sdes struct {
	suite         SRTPSuite
	local, remote []byte
}

func (a *sdes) equal(b *sdes) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.suite == b.suite && bytes.Equal(a.local, b.local) && bytes.Equal(a.remote, b.remote)
}

// srtpSession holds the four SRTP contexts of a keying: pion's contexts
// are not safe for concurrent use, and RTP and RTCP go each way from
// different goroutines.
type srtpSession struct {
	keys          *sdes
	txRTP, txRTCP *srtp.Context
	rxRTP, rxRTCP *srtp.Context
}

func newSRTPSession(k *sdes) (*srtpSession, error) {
	prof, _ := suiteInfo(k.suite)
	klen, _ := prof.KeyLen()
	mk := func(key []byte) (*srtp.Context, error) {
		return srtp.CreateContext(key[:klen], key[klen:], prof)
	}
	s := &srtpSession{keys: k}
	var err error
	for _, c := range []struct {
		dst **srtp.Context
		key []byte
	}{{&s.txRTP, k.local}, {&s.txRTCP, k.local}, {&s.rxRTP, k.remote}, {&s.rxRTCP, k.remote}} {
		if *c.dst, err = mk(c.key); err != nil {
			return nil, fmt.Errorf("rtp: SRTP context: %w", err)
		}
	}
	return s, nil
}
