package message

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParams(t *testing.T) {
	p := Params(`branch=z9hG4bK1;RPort;received=192.0.2.1;text="a;b"`)
	v, ok := p.Get("branch")
	assert.True(t, ok)
	assert.Equal(t, "z9hG4bK1", v)
	v, ok = p.Get("rport")
	assert.True(t, ok)
	assert.Equal(t, "", v)
	v, ok = p.Get("TEXT")
	assert.True(t, ok)
	assert.Equal(t, `"a;b"`, v)
	assert.Equal(t, "a;b", Unquote(v))
	_, ok = p.Get("maddr")
	assert.False(t, ok)
	assert.Equal(t, 4, p.Len())

	p = p.Set("rport", "5060")
	assert.Equal(t, Params(`branch=z9hG4bK1;rport=5060;received=192.0.2.1;text="a;b"`), p)
	p = p.Del("received").Set("lr", "")
	assert.Equal(t, Params(`branch=z9hG4bK1;rport=5060;text="a;b";lr`), p)
	assert.Equal(t, Params("tag=1"), Params("").Set("tag", "1"))
	assert.Equal(t, Params(""), Params("tag=1").Del("tag"))
	assert.Equal(t, Params("a"), Params("a").Del("b"))

	var names []string
	for n := range p.All() {
		names = append(names, n)
		if n == "rport" {
			break
		}
	}
	assert.Equal(t, []string{"branch", "rport"}, names)
}

func TestParseHeaderParams(t *testing.T) {
	ok := map[string]Params{
		"tag=1":                    "tag=1",
		"tag    = 1918181833n":     "tag=1918181833n",
		" a ; b = c ;d":            "a;b=c;d",
		`q=0.5;x="quoted ; value"`: `q=0.5;x="quoted ; value"`,
		"received=[2001:db8::1]":   "received=[2001:db8::1]",
	}
	for in, want := range ok {
		got, good := parseHeaderParams(in)
		assert.True(t, good, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", ";", "a;;b", "a=", "=b", `a="open`, "a b", "a=b c"} {
		_, good := parseHeaderParams(in)
		assert.False(t, good, in)
	}
}

func TestUnquote(t *testing.T) {
	assert.Equal(t, `J Rosenberg \"`, unquote(`"J Rosenberg \\\""`))
	assert.Equal(t, "plain", unquote("plain"))
	assert.Equal(t, "", unquote(`""`))
	assert.Equal(t, `"a\"b\\"`, string(appendQuoted(nil, `a"b\`)))
}
