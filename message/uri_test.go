package message

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
		out  string // written form, when it differs from in
	}{
		{in: "sip:alice@atlanta.com", want: URI{Scheme: "sip", User: "alice", Host: "atlanta.com"}},
		{in: "sip:alice:secretword@atlanta.com;transport=tcp", want: URI{Scheme: "sip", User: "alice", Password: "secretword", Host: "atlanta.com", Params: "transport=tcp"}},
		{in: "sips:alice@atlanta.com?subject=project%20x&priority=urgent", want: URI{Scheme: "sips", User: "alice", Host: "atlanta.com", Headers: "subject=project%20x&priority=urgent"}},
		{in: "sip:+1-212-555-1212:1234@gateway.com;user=phone", want: URI{Scheme: "sip", User: "+1-212-555-1212", Password: "1234", Host: "gateway.com", Params: "user=phone"}},
		{in: "sips:1212@gateway.com", want: URI{Scheme: "sips", User: "1212", Host: "gateway.com"}},
		{in: "sip:alice@192.0.2.4", want: URI{Scheme: "sip", User: "alice", Host: "192.0.2.4"}},
		{in: "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", want: URI{Scheme: "sip", Host: "atlanta.com", Params: "method=REGISTER", Headers: "to=alice%40atlanta.com"}},
		{in: "sip:alice;day=tuesday@atlanta.com", want: URI{Scheme: "sip", User: "alice;day=tuesday", Host: "atlanta.com"}},
		{in: "sip:[2001:db8::10]:5070;lr", want: URI{Scheme: "sip", Host: "2001:db8::10", Port: 5070, Params: "lr"}},
		{in: "SIP:Bob@Biloxi.COM:5060", want: URI{Scheme: "sip", User: "Bob", Host: "Biloxi.COM", Port: 5060}, out: "sip:Bob@Biloxi.COM:5060"},
		{in: "sip:%61lice@atlanta.com", want: URI{Scheme: "sip", User: "alice", Host: "atlanta.com"}, out: "sip:alice@atlanta.com"},
		{in: "sip:sips%3Auser%40example.com@example.net", want: URI{Scheme: "sip", User: "sips:user@example.com", Host: "example.net"}},
		{in: "sip:null-%00-null@example.com", want: URI{Scheme: "sip", User: "null-\x00-null", Host: "example.com"}},
		{in: "sip:abc123.invalid;transport=ws", want: URI{Scheme: "sip", Host: "abc123.invalid", Params: "transport=ws"}},
		{in: "tel:+1-201-555-0123", want: URI{Scheme: "tel", User: "+1-201-555-0123"}},
		{in: "tel:7042;phone-context=example.com", want: URI{Scheme: "tel", User: "7042", Params: "phone-context=example.com"}},
		{in: "urn:service:sos", want: URI{Scheme: "urn", Opaque: "service:sos"}},
		{in: "mailto:bob@example.org", want: URI{Scheme: "mailto", Opaque: "bob@example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseURI(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, u)
			out := tt.out
			if out == "" {
				out = tt.in
			}
			assert.Equal(t, out, u.String())
			back, err := ParseURI(u.String())
			require.NoError(t, err)
			assert.Equal(t, u, back)
		})
	}
}

func TestParseURIErrors(t *testing.T) {
	for _, in := range []string{
		"", "sip", "sip:", ":alice@host", "1sip:host", "s p:host",
		"sip:alice@", "sip:@host", "sip:alice@host:", "sip:alice@host:99999", "sip:alice@host:12a",
		"sip:alice@[::1", "sip:alice@[]", "sip:alice@[zz::1]", "sip:alice@[::1]x",
		"sip:alice@host;", "sip:alice@host;;lr", "sip:alice@host;a=", "sip:alice@host?", "sip:alice@ho st",
		"sip:al ice@host", "sip:alice%2@host", "sip:alice%zz@host", "<sip:alice@host>",
		"tel:", "tel:xyz", "tel:123;", "foo:a b",
	} {
		_, err := ParseURI(in)
		assert.Error(t, err, in)
		assert.True(t, errors.Is(err, ErrMalformed), in)
	}
}

// RFC 3261 §19.1.4 examples.
func TestURIEqual(t *testing.T) {
	equal := [][2]string{
		{"sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;security=on"},
		{"sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"},
		{"sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com", "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"},
		{"sip:alice@atlanta.com?subject=project%20x&priority=urgent", "sip:alice@atlanta.com?priority=urgent&subject=project%20x"},
		{"tel:+1-201-555-0123", "tel:+12015550123"},
	}
	notEqual := [][2]string{
		{"SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"},
		{"sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"},
		{"sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"},
		{"sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"},
		{"sip:alice@atlanta.com", "sips:alice@atlanta.com"},
		{"sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"},
		{"tel:+1-201-555-0123", "tel:+12015550124"},
		{"urn:a", "urn:b"},
	}
	for _, p := range equal {
		a, b := MustParseURI(p[0]), MustParseURI(p[1])
		assert.True(t, a.Equal(b), "%s == %s", p[0], p[1])
		assert.True(t, b.Equal(a), "%s == %s", p[1], p[0])
	}
	for _, p := range notEqual {
		a, b := MustParseURI(p[0]), MustParseURI(p[1])
		assert.False(t, a.Equal(b), "%s != %s", p[0], p[1])
		assert.False(t, b.Equal(a), "%s != %s", p[1], p[0])
	}
}

func TestURIHostPort(t *testing.T) {
	assert.Equal(t, "[::1]:5060", MustParseURI("sip:[::1]:5060").HostPort())
	assert.Equal(t, "example.com", MustParseURI("sip:u@example.com").HostPort())
	assert.Panics(t, func() { MustParseURI("nope") })
}

func TestURIEscapingOnWrite(t *testing.T) {
	u := URI{Scheme: "sip", User: "I have spaces", Password: "p@ss", Host: "example.net"}
	assert.Equal(t, "sip:I%20have%20spaces:p%40ss@example.net", u.String())
	back := MustParseURI(u.String())
	assert.Equal(t, u, back)
}
