package message

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVia(t *testing.T) {
	tests := []struct {
		in   string
		want Via
		out  string
	}{
		{"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport", Via{"SIP/2.0", "UDP", "192.0.2.1", 5060, "branch=z9hG4bK776;rport"}, ""},
		{"SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw", Via{"SIP/2.0", "UDP", "192.0.2.2", 0, "branch=390skdjuw"}, "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw"},
		{"SIP/2.0/WS  df7jal23ls0d.invalid;branch=z9hG4bK1", Via{"SIP/2.0", "WS", "df7jal23ls0d.invalid", 0, "branch=z9hG4bK1"}, "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1"},
		{"sip/2.0/tcp [2001:db8::1]:5061 ; branch = z9hG4bK2 ; received=2001:db8::9", Via{"SIP/2.0", "TCP", "2001:db8::1", 5061, "branch=z9hG4bK2;received=2001:db8::9"}, "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK2;received=2001:db8::9"},
		{"SIP/2.0/UDP host : 5070;rport=5071", Via{"SIP/2.0", "UDP", "host", 5070, "rport=5071"}, "SIP/2.0/UDP host:5070;rport=5071"},
		{"SIP/2.0/UNKNOWN t4.example.com", Via{"SIP/2.0", "UNKNOWN", "t4.example.com", 0, ""}, ""},
		{"SIP/7.0/UDP c.example.com", Via{"SIP/7.0", "UDP", "c.example.com", 0, ""}, ""},
	}
	for _, tt := range tests {
		v, err := ParseVia(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, v, tt.in)
		out := tt.out
		if out == "" {
			out = tt.in
		}
		assert.Equal(t, out, v.String())
	}
	v, _ := ParseVia("SIP/2.0/UDP h;branch=z9hG4bKx;received=1.2.3.4;rport=9")
	assert.Equal(t, "z9hG4bKx", v.Branch())
	assert.Equal(t, "1.2.3.4", v.Received())
	p, ok := v.RPort()
	assert.True(t, ok)
	assert.Equal(t, 9, p)
	v, _ = ParseVia("SIP/2.0/UDP h:1;rport")
	p, ok = v.RPort()
	assert.True(t, ok)
	assert.Equal(t, 0, p)
	assert.Equal(t, "h:1", v.SentBy())
	_, ok = Via{}.RPort()
	assert.False(t, ok)
	assert.Equal(t, "SIP/2.0/TLS h", Via{Transport: "TLS", Host: "h"}.String())

	for _, in := range []string{"", "SIP/2.0", "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP 2.0/UDP h", "SIP/2.0/UDP h;", "SIP/2.0/UDP 192.0.2.15;;,;,,", "SIP/2.0/UDP h x", "SIP/2.0/UDP h:99999", "SIP//UDP h"} {
		_, err := ParseVia(in)
		assert.ErrorIs(t, err, ErrMalformed, in)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want Address
		out  string
	}{
		{`"Bob" <sips:bob@biloxi.com>;tag=a48s`, Address{DisplayName: "Bob", URI: URI{Scheme: "sips", User: "bob", Host: "biloxi.com"}, Params: "tag=a48s"}, `"Bob" <sips:bob@biloxi.com>;tag=a48s`},
		{`sip:+12125551212@phone2net.com;tag=887s`, Address{URI: URI{Scheme: "sip", User: "+12125551212", Host: "phone2net.com"}, Params: "tag=887s"}, `<sip:+12125551212@phone2net.com>;tag=887s`},
		{`Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8`, Address{DisplayName: "Anonymous", URI: URI{Scheme: "sip", User: "c8oqz84zk7z", Host: "privacy.org"}, Params: "tag=hyh8"}, `"Anonymous" <sip:c8oqz84zk7z@privacy.org>;tag=hyh8`},
		{`caller<sip:caller@example.com>;tag=323`, Address{DisplayName: "caller", URI: URI{Scheme: "sip", User: "caller", Host: "example.com"}, Params: "tag=323"}, `"caller" <sip:caller@example.com>;tag=323`},
		{`"J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8`, Address{DisplayName: `J Rosenberg \"`, URI: URI{Scheme: "sip", User: "jdrosen", Host: "example.com"}, Params: "tag=98asjd8"}, `"J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8`},
		{`<sip:p1.example.com;lr>`, Address{URI: URI{Scheme: "sip", Host: "p1.example.com", Params: "lr"}}, ""},
		{`*`, Address{Wildcard: true}, ""},
		{`<sip:a@b>;expires=0;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`, Address{URI: URI{Scheme: "sip", User: "a", Host: "b"}, Params: `expires=0;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`}, ""},
		{`< sip:t.watson@example.org >`, Address{URI: URI{Scheme: "sip", User: "t.watson", Host: "example.org"}}, `<sip:t.watson@example.org>`},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, a, tt.in)
		out := tt.out
		if out == "" {
			out = tt.in
		}
		assert.Equal(t, out, a.String(), tt.in)
		back, err := ParseAddress(a.String())
		require.NoError(t, err)
		assert.Equal(t, a, back)
	}
	a, _ := ParseAddress("<sip:a@b>;tag=xyz")
	assert.Equal(t, "xyz", a.Tag())
	for _, in := range []string{"", "  ", `"unterminated <sip:a@b>`, `"Bob" sip:bob@b`, `<sip:a@b`, `<sip:a@b> junk`, `<sip:a@b>;`, `<sip:a@b>;;`, `sip:user@example.com?Route=%3Csip:sip.example.com%3E`, `<nope>`, `Joe <sip:a@b>;;;;`} {
		_, err := ParseAddress(in)
		assert.ErrorIs(t, err, ErrMalformed, in)
	}
}

func TestContactsList(t *testing.T) {
	var h Header
	h.Add("Contact", `"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, "Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1`)
	h.Add("m", "<sip:a,b@host>")
	c, err := h.Contacts()
	require.NoError(t, err)
	require.Len(t, c, 3)
	q, _ := c[0].Params.Get("q")
	assert.Equal(t, "0.7", q)
	assert.Equal(t, "mailto", c[1].URI.Scheme)
	assert.Equal(t, "a,b", c[2].URI.User)

	h.Set("Contact", `"unbalanced <sip:a@b>`)
	_, err = h.Contacts()
	assert.ErrorIs(t, err, ErrMalformed)
	h.Set("Contact", `<sip:a@b>;;`)
	_, err = h.Contacts()
	assert.ErrorIs(t, err, ErrMalformed)
}
