package digest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/require"
)

// newRequest returns a request with the headers digest needs.
func newRequest(method, uri, callID string, cseq uint32) *message.Request {
	r := &message.Request{Method: method, URI: message.MustParseURI(uri)}
	r.Header.Add("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch="+message.NewBranch())
	r.Header.Add("From", "<sip:alice@example.com>;tag=1928301774")
	r.Header.Add("To", "<sip:alice@example.com>")
	r.Header.Add("Call-ID", callID)
	r.Header.Add("CSeq", fmt.Sprintf("%d %s", cseq, method))
	return r
}

// next returns the request a UA sends after a challenge to r: a copy
// with CSeq+1 and a new branch.
func next(r *message.Request) *message.Request {
	n := r.Clone()
	cs, err := n.Header.CSeq()
	if err != nil {
		panic(err)
	}
	n.Header.Set("CSeq", fmt.Sprintf("%d %s", cs.Seq+1, cs.Method))
	n.Header.Set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch="+message.NewBranch())
	return n
}

// challenge returns a response to req with code and the header fields
// given as name, value pairs.
func challenge(req *message.Request, code int, fields ...string) *message.Response {
	resp := message.NewResponse(req, code, "", "")
	for i := 0; i+1 < len(fields); i += 2 {
		resp.Header.Add(fields[i], fields[i+1])
	}
	return resp
}

// params parses a credentials value into its parameters (names lower
// case) and checks its scheme.
func params(t *testing.T, value string) map[string]string {
	t.Helper()
	list, err := parseAuthList(value)
	require.NoError(t, err, value)
	require.Len(t, list, 1, value)
	require.True(t, strings.EqualFold(list[0].scheme, "Digest"), value)
	m := map[string]string{}
	for _, p := range list[0].params {
		m[strings.ToLower(p.name)] = p.value
	}
	return m
}

// headerValues returns all values of the header field name.
func headerValues(h *message.Header, name string) []string {
	var out []string
	for _, f := range h.Fields() {
		if message.CanonicalName(f.Name) == name {
			out = append(out, f.Value)
		}
	}
	return out
}

// fixedCnonce makes c use cnonce.
func fixedCnonce(c *Client, cnonce string) *Client {
	c.cnonce = func() string { return cnonce }
	return c
}
