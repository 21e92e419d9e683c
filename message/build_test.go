package message

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		b := NewBranch()
		assert.True(t, strings.HasPrefix(b, MagicCookie))
		assert.Len(t, b, len(MagicCookie)+22)
		assert.True(t, isToken(b))
		assert.False(t, seen[b])
		seen[b] = true
		tag := NewTag()
		assert.Len(t, tag, 12)
		assert.True(t, isToken(tag))
		assert.False(t, seen[tag])
		seen[tag] = true
		id := NewCallID()
		assert.Len(t, id, 22)
		assert.False(t, seen[id])
		seen[id] = true
	}
}

func TestNewRequest(t *testing.T) {
	from, _ := ParseAddress(`"Alice" <sip:alice@atlanta.com>`)
	to, _ := ParseAddress(`<sip:bob@biloxi.com>`)
	r := NewRequest("INVITE", MustParseURI("sip:bob@biloxi.com"), from, to)
	r.Header.PrependVia(Via{Transport: "UDP", Host: "pc33.atlanta.com", Params: Params("branch=" + NewBranch())})
	require.NoError(t, r.Validate())
	f, _ := r.Header.From()
	assert.Len(t, f.Tag(), 12)
	assert.Equal(t, "Alice", f.DisplayName)
	c, _ := r.Header.CSeq()
	assert.Equal(t, CSeq{1, "INVITE"}, c)
	mf, _, _ := r.Header.MaxForwards()
	assert.Equal(t, 70, mf)
	assert.Len(t, r.Header.CallID(), 22)

	from.Params = "tag=fixed"
	r = NewRequest("MESSAGE", to.URI, from, to)
	assert.Equal(t, "fixed", r.Header.FromTag())

	back, err := ParseRequest([]byte(r.String()))
	require.NoError(t, err)
	assert.Equal(t, r.String(), back.String())
}

func TestNewResponse(t *testing.T) {
	raw := "INVITE sip:bob@biloxi.com SIP/2.0\r\n" +
		"v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n" +
		"Via: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: Bob <sip:bob@biloxi.com>\r\n" +
		"f: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n" +
		"CSeq: 314159 INVITE\r\n" +
		"Timestamp: 54\r\n" +
		"Contact: <sip:alice@pc33.atlanta.com>\r\n" +
		"Content-Length: 0\r\n\r\n"
	req, err := ParseRequest([]byte(raw))
	require.NoError(t, err)

	trying := NewResponse(req, 100, "", "")
	assert.Equal(t, "SIP/2.0 100 Trying\r\n"+
		"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"+
		"Via: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n"+
		"To: Bob <sip:bob@biloxi.com>\r\n"+
		"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"+
		"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"+
		"CSeq: 314159 INVITE\r\n"+
		"Timestamp: 54\r\n"+
		"Content-Length: 0\r\n\r\n", trying.String())
	require.NoError(t, trying.Validate())

	ok := NewResponse(req, 200, "Fine", "a6c85cf")
	assert.Equal(t, "Fine", ok.Reason)
	assert.Equal(t, "a6c85cf", ok.Header.ToTag())
	assert.False(t, ok.Header.Has("Timestamp"))
	assert.False(t, ok.Header.Has("Contact"))
	assert.Equal(t, 3, ok.Header.ViaCount())

	random := NewResponse(req, 486, "", "")
	assert.Len(t, random.Header.ToTag(), 12)
	assert.Equal(t, "Busy Here", random.Reason)

	// A To that has a tag keeps it.
	req.Header.Set("To", "<sip:bob@biloxi.com>;tag=existing")
	assert.Equal(t, "existing", NewResponse(req, 200, "", "other").Header.ToTag())
}

func TestStatusText(t *testing.T) {
	assert.Equal(t, "OK", StatusText(200))
	assert.Equal(t, "Call/Transaction Does Not Exist", StatusText(481))
	assert.Equal(t, "Client Error", StatusText(499))
	assert.Equal(t, "Redirection", StatusText(399))
	assert.Equal(t, "Server Error", StatusText(599))
	assert.Equal(t, "Global Failure", StatusText(699))
	assert.Equal(t, "Success", StatusText(299))
	assert.Equal(t, "Provisional", StatusText(189))
	assert.Equal(t, "Status 42", StatusText(42))
}

// TestTokenNeverHoldsCSeq: a random token that spells "CSeq" is drawn
// again (SIPp aborts a call whose To tag holds it).
func TestTokenNeverHoldsCSeq(t *testing.T) {
	pos := func(c byte) byte { return byte(strings.IndexByte(idAlphabet, c)) }
	b := []byte{0, pos('C'), pos('S'), pos('e'), pos('q'), 1}
	if tokenFrom(b) {
		t.Fatalf("token %q accepted", b)
	}
	b = []byte{0, pos('C'), pos('s'), pos('e'), pos('q'), 1}
	if !tokenFrom(b) {
		t.Fatalf("token %q refused", b)
	}
	for range 1000 {
		if tag := NewTag(); strings.Contains(tag, "CSeq") || len(tag) != 12 {
			t.Fatalf("tag %q", tag)
		}
	}
}
