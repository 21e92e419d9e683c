package message

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeaderOps(t *testing.T) {
	var h Header
	h.Add("v", "SIP/2.0/UDP a;branch=z9hG4bK1")
	h.Add("X-Custom", "one")
	h.Add("Via", "SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/UDP c;branch=z9hG4bK3")
	h.Add("x-custom", "two")
	h.Add("i", "abc")

	assert.Equal(t, 5, h.Len())
	assert.Equal(t, "abc", h.Get("Call-ID"))
	assert.Equal(t, "abc", h.Get("call-id"))
	assert.Equal(t, "abc", h.CallID())
	assert.Equal(t, "one", h.Get("X-CUSTOM"))
	assert.Equal(t, 2, h.Count("x-custom"))
	assert.Equal(t, 2, h.Count("Via"))
	assert.Equal(t, 3, h.ViaCount())
	assert.Equal(t, []string{"one", "two"}, slices.Collect(h.Values("X-Custom")))
	assert.False(t, h.Has("Contact"))
	_, ok := h.Lookup("Route")
	assert.False(t, ok)

	h.Set("X-Custom", "three")
	assert.Equal(t, []string{"three"}, slices.Collect(h.Values("X-Custom")))
	assert.Equal(t, "X-Custom", h.Fields()[1].Name, "Set keeps the position of the first field")

	h.Prepend("Via", "SIP/2.0/TCP top;branch=z9hG4bK0")
	v, err := h.TopVia()
	require.NoError(t, err)
	assert.Equal(t, "top", v.Host)
	h.RemoveTopVia()
	h.RemoveTopVia()
	v, err = h.TopVia()
	require.NoError(t, err)
	assert.Equal(t, "b", v.Host)
	h.RemoveTopVia()
	v, _ = h.TopVia()
	assert.Equal(t, "c", v.Host)
	h.RemoveTopVia()
	_, err = h.TopVia()
	assert.ErrorIs(t, err, ErrMissingHeader)
	h.RemoveTopVia() // no Via left: no-op

	c := h.Clone()
	h.Del("x-custom")
	assert.False(t, h.Has("X-Custom"))
	assert.True(t, c.Has("X-Custom"), "clone is independent")

	h.Set("Max-Forwards", "70")
	mf, present, err := h.MaxForwards()
	assert.NoError(t, err)
	assert.True(t, present)
	assert.Equal(t, 70, mf)
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"v": "Via", "F": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
		"c": "Content-Type", "e": "Content-Encoding", "k": "Supported", "s": "Subject", "o": "Event",
		"r": "Refer-To", "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires", "y": "Identity",
		"call-id": "Call-ID", "CSEQ": "CSeq", "www-authenticate": "WWW-Authenticate", "min-se": "Min-SE",
		"X-Unknown": "X-Unknown", "a": "a", "z": "z", "": "",
	} {
		assert.Equal(t, want, CanonicalName(in), in)
	}
	for id := hid(1); id < hCount; id++ {
		assert.Equal(t, id, lookupID(headerNames[id]), headerNames[id])
	}
}

func TestTypedHeaders(t *testing.T) {
	raw := "NOTIFY sip:a@b SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n" +
		"Call-ID: x\r\nCSeq: 2 NOTIFY\r\nMax-Forwards: 70\r\n" +
		"Event: refer;id=93809824\r\n" +
		"Subscription-State: active;expires=60\r\n" +
		"Session-Expires: 1800;refresher=uac\r\nMin-SE: 90\r\nRSeq: 988789\r\nRAck: 776656 1 INVITE\r\n" +
		"Replaces: 425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only\r\n" +
		"Reason: SIP;cause=580;text=\"Precondition Failure\", Q.850;cause=16\r\n" +
		"Retry-After: 18000;duration=3600\r\nExpires: 3600\r\nMin-Expires: 60\r\n" +
		"Refer-To: <sip:carol@example.com?Replaces=abc>\r\nReferred-By: <sip:a@b>\r\n" +
		"Allow: INVITE, ACK, CANCEL,BYE\r\nSupported: 100rel, timer\r\nk: replaces\r\n" +
		"Route: <sip:p1;lr>, <sip:p2;lr>\r\nRoute: <sip:p3;lr>\r\nRecord-Route: <sip:rr;lr>\r\n" +
		"WWW-Authenticate: Digest realm=\"atlanta.com\", nonce=\"84a4cc6f3082121f32b42a2187831a9e\", qop=\"auth,auth-int\", algorithm=MD5\r\n" +
		"Content-Type: message/sipfrag;version=2.0\r\nUser-Agent: sipua\r\nServer: sipua\r\n" +
		"Content-Length: 0\r\n\r\n"
	m, err := Parse([]byte(raw))
	require.NoError(t, err)
	require.NoError(t, m.Validate())
	h := m.Headers()

	ev, ok, err := h.Event()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "refer", ev.Value)
	id, _ := ev.Params.Get("id")
	assert.Equal(t, "93809824", id)
	assert.Equal(t, "refer;id=93809824", ev.String())

	ss, _, _ := h.SubscriptionState()
	assert.Equal(t, "active", ss.Value)
	se, _, _ := h.SessionExpires()
	assert.Equal(t, "1800", se.Value)
	ref, _ := se.Params.Get("refresher")
	assert.Equal(t, "uac", ref)
	minse, _, _ := h.MinSE()
	assert.Equal(t, uint32(90), minse)
	rseq, _, _ := h.RSeq()
	assert.Equal(t, uint32(988789), rseq)
	rack, err := h.RAck()
	require.NoError(t, err)
	assert.Equal(t, RAck{RSeq: 776656, CSeq: 1, Method: "INVITE"}, rack)
	assert.Equal(t, "776656 1 INVITE", rack.String())

	rep, ok, err := h.Replaces()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, Replaces{CallID: "425928@bobster.example.org", ToTag: "7743", FromTag: "6472", EarlyOnly: true}, rep)
	assert.Equal(t, "425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only", rep.String())

	reasons, err := h.Reasons()
	require.NoError(t, err)
	assert.Equal(t, []Reason{{"SIP", 580, "Precondition Failure"}, {"Q.850", 16, ""}}, reasons)

	ra, _, _ := h.RetryAfter()
	assert.Equal(t, uint32(18000), ra)
	exp, _, _ := h.Expires()
	assert.Equal(t, uint32(3600), exp)
	minexp, _, _ := h.MinExpires()
	assert.Equal(t, uint32(60), minexp)

	rt, err := h.ReferTo()
	require.NoError(t, err)
	assert.Equal(t, "Replaces=abc", rt.URI.Headers)
	rb, err := h.ReferredBy()
	require.NoError(t, err)
	assert.Equal(t, "a", rb.URI.User)

	assert.Equal(t, []string{"INVITE", "ACK", "CANCEL", "BYE"}, h.Tokens("Allow"))
	assert.True(t, h.HasToken("Supported", "REPLACES"))
	assert.True(t, h.HasToken("supported", "timer"))
	assert.False(t, h.HasToken("Supported", "path"))

	routes, err := h.Routes()
	require.NoError(t, err)
	require.Len(t, routes, 3)
	assert.Equal(t, "p3", routes[2].URI.Host)
	rr, err := h.RecordRoutes()
	require.NoError(t, err)
	assert.True(t, rr[0].URI.Params.Has("lr"))

	auth, err := ParseAuth(h.Get("WWW-Authenticate"))
	require.NoError(t, err)
	assert.Equal(t, "Digest", auth.Scheme)
	realm, _ := auth.Get("realm")
	assert.Equal(t, "atlanta.com", realm)
	qop, _ := auth.Get("QOP")
	assert.Equal(t, "auth,auth-int", qop)
	alg, _ := auth.Get("algorithm")
	assert.Equal(t, "MD5", alg)
	_, ok = auth.Get("opaque")
	assert.False(t, ok)
	assert.Equal(t, h.Get("WWW-Authenticate"), auth.String())

	assert.Equal(t, "message/sipfrag", h.MediaType())
	assert.Equal(t, "sipua", h.Get("User-Agent"))
}

func TestTypedHeaderErrors(t *testing.T) {
	var h Header
	_, err := h.CSeq()
	assert.ErrorIs(t, err, ErrMissingHeader)
	_, err = h.RAck()
	assert.ErrorIs(t, err, ErrMissingHeader)
	_, err = h.From()
	assert.ErrorIs(t, err, ErrMissingHeader)
	_, ok, err := h.Event()
	assert.False(t, ok)
	assert.NoError(t, err)
	_, ok, _ = h.Replaces()
	assert.False(t, ok)

	h.Set("Max-Forwards", "256")
	_, _, err = h.MaxForwards()
	assert.ErrorIs(t, err, ErrOutOfRange)
	h.Set("Max-Forwards", "x")
	_, _, err = h.MaxForwards()
	assert.ErrorIs(t, err, ErrMalformed)
	h.Set("RAck", "1 2")
	_, err = h.RAck()
	assert.ErrorIs(t, err, ErrMalformed)
	h.Set("RAck", "1 99999999999 INVITE")
	_, err = h.RAck()
	assert.ErrorIs(t, err, ErrOutOfRange)
	h.Set("Replaces", "abc;to-tag=1")
	_, _, err = h.Replaces()
	assert.ErrorIs(t, err, ErrMalformed)
	h.Set("Event", ";id=1")
	_, _, err = h.Event()
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Event", pe.Header)
	h.Set("Reason", "SIP;cause=x")
	_, err = h.Reasons()
	assert.ErrorIs(t, err, ErrMalformed)

	for _, in := range []string{"", "1", "INVITE", "-1 INVITE", "1 IN VITE", "2147483648 INVITE", "1\tINVITE x"} {
		_, err := ParseCSeq(in)
		assert.Error(t, err, in)
	}
	c, err := ParseCSeq("0009\r\n  INVITE")
	require.NoError(t, err)
	assert.Equal(t, CSeq{9, "INVITE"}, c)
	assert.Equal(t, "9 INVITE", c.String())

	_, err = ParseAuth(`Digest realm="x`)
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = ParseAuth(``)
	assert.ErrorIs(t, err, ErrMalformed)
	a, err := ParseAuth(`Bearer abc/def==`)
	require.NoError(t, err)
	assert.Equal(t, []AuthParam{{Value: "abc/def=="}}, a.Params)
}

func TestSetTopVia(t *testing.T) {
	var h Header
	h.Add("X", "y")
	h.SetTopVia(Via{Transport: "UDP", Host: "a", Params: "branch=z9hG4bK1"})
	assert.Equal(t, "SIP/2.0/UDP a;branch=z9hG4bK1", h.Get("Via"))
	h.Set("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2")
	h.Add("Via", "SIP/2.0/UDP c")
	v, _ := h.TopVia()
	v.Params = v.Params.Set("received", "192.0.2.1")
	h.SetTopVia(v)
	assert.Equal(t, []string{"SIP/2.0/UDP a;branch=z9hG4bK1;received=192.0.2.1", "SIP/2.0/TCP b;branch=z9hG4bK2", "SIP/2.0/UDP c"}, slices.Collect(h.Values("Via")))
	assert.Equal(t, 2, h.Count("Via"))
	assert.Equal(t, "Via", h.Fields()[0].Name, "in place, where the first SetTopVia put it")
	assert.Equal(t, "X", h.Fields()[1].Name)
	assert.Equal(t, Limits{65535, 256, 8192, 65535}, Limits{}.WithDefaults())
}
