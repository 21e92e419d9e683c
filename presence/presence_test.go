package presence

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPIDFRoundTrip(t *testing.T) {
	p := &PIDF{Entity: "sip:alice@example.com", Notes: []string{"at <home> & away"}, Tuples: []Tuple{
		{ID: "phone", Basic: Open, Contact: "sip:alice@192.0.2.1", Priority: "0.8", Note: "ready"},
		{Basic: Closed},
	}}
	b, err := p.Marshal()
	require.NoError(t, err)
	assert.Contains(t, string(b), `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">`)
	assert.Contains(t, string(b), "at &lt;home&gt; &amp; away")
	got, err := ParsePIDF(b)
	require.NoError(t, err)
	p.Tuples[1].ID = "t2"
	assert.Equal(t, p, got)
	assert.True(t, got.Open())
	assert.False(t, NewPIDF("sip:a@b", Closed, "").Open())
}

// TestParsePIDFForeign: documents as other implementations write them,
// with prefixes and extension namespaces (RFC 4480 rpid, RFC 4479 data
// model), parse.
func TestParsePIDFForeign(t *testing.T) {
	body := `<?xml version="1.0" encoding="UTF-8"?>
<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
  xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:bob@sipua.test">
 <p:tuple id="sj1"><p:status><p:basic> closed </p:basic></p:status><p:contact priority="1">sip:bob@h</p:contact>
  <p:timestamp>2026-12-05T17:00:00Z</p:timestamp></p:tuple>
 <dm:person id="x"><rpid:activities><rpid:away/></rpid:activities></dm:person>
 <p:note xml:lang="en">gone</p:note>
</p:presence>`
	p, err := ParsePIDF([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, "sip:bob@sipua.test", p.Entity)
	require.Len(t, p.Tuples, 1)
	assert.Equal(t, Tuple{ID: "sj1", Basic: Closed, Contact: "sip:bob@h", Priority: "1"}, p.Tuples[0])
	assert.Equal(t, []string{"gone"}, p.Notes)
	assert.False(t, p.Open())
}

func TestPIDFErrors(t *testing.T) {
	for name, body := range map[string]string{
		"empty":      "",
		"not xml":    "hello",
		"wrong root": `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"/>`,
		"wrong ns":   `<presence entity="sip:a@b"/>`,
		"unclosed":   `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="a">`,
		"trailing":   `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/><x/>`,
		"latin1":     `<?xml version="1.0" encoding="ISO-8859-1"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>`,
		"entity":     `<!DOCTYPE p [<!ENTITY e "x">]><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="&e;"/>`,
	} {
		_, err := ParsePIDF([]byte(body))
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
	_, err := ParsePIDF([]byte("<presence>" + strings.Repeat(" ", MaxBodySize) + "</presence>"))
	assert.ErrorIs(t, err, ErrTooLarge)
	_, err = (&PIDF{}).Marshal()
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = (&PIDF{Entity: "sip:a@b", Tuples: []Tuple{{Basic: "busy"}}}).Marshal()
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestDialogInfoRoundTrip(t *testing.T) {
	d := &DialogInfo{Entity: "sip:bob@example.com", Version: 3, Full: true, Dialogs: []Dialog{{
		ID: "d1", CallID: "abc@h", LocalTag: "l", RemoteTag: "r", Direction: "recipient",
		State: Terminated, Event: "remote-bye", Code: 200,
		Local:  Participant{Identity: "sip:bob@example.com", Display: "Bob & co", Target: "sip:bob@192.0.2.2"},
		Remote: Participant{Identity: "sip:alice@example.com"},
	}, {ID: "d2", State: Early}}}
	b, err := d.Marshal()
	require.NoError(t, err)
	got, err := ParseDialogInfo(b)
	require.NoError(t, err)
	assert.Equal(t, d, got)
	assert.True(t, got.Busy(), "d2 is early")
	assert.False(t, (&DialogInfo{Dialogs: []Dialog{{State: Terminated}}}).Busy())
}

// TestParseDialogInfoKamailio: a document of the form Kamailio's
// pua_dialoginfo publishes.
func TestParseDialogInfoKamailio(t *testing.T) {
	body := `<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:bob@sipua.test">
  <dialog id="Ab3" call-id="Ab3" local-tag="x" direction="recipient">
    <state>early</state>
    <remote><identity>sip:alice@sipua.test</identity><target uri="sip:alice@sipua.test"/></remote>
    <local><identity>sip:bob@sipua.test</identity><target uri="sip:bob@sipua.test"/></local>
  </dialog>
</dialog-info>`
	d, err := ParseDialogInfo([]byte(body))
	require.NoError(t, err)
	require.Len(t, d.Dialogs, 1)
	assert.Equal(t, Early, d.Dialogs[0].State)
	assert.Equal(t, "recipient", d.Dialogs[0].Direction)
	assert.Equal(t, "sip:alice@sipua.test", d.Dialogs[0].Remote.Identity)
	assert.Equal(t, uint32(1), d.Version)
	assert.True(t, d.Full)
	assert.True(t, d.Busy())
}

func TestDialogInfoErrors(t *testing.T) {
	for name, body := range map[string]string{
		"bad state":   `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"><dialog id="1"><state>ringing</state></dialog></dialog-info>`,
		"bad version": `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="-1" state="full" entity="sip:a@b"/>`,
		"bad code":    `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"><dialog id="1"><state code="99">terminated</state></dialog></dialog-info>`,
		"pidf":        `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>`,
	} {
		_, err := ParseDialogInfo([]byte(body))
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
	_, err := (&DialogInfo{Entity: "sip:a@b", Dialogs: []Dialog{{ID: "1", State: "ringing"}}}).Marshal()
	assert.True(t, errors.Is(err, ErrInvalid))
	_, err = (&DialogInfo{Entity: "sip:a@b", Dialogs: []Dialog{{State: Early}}}).Marshal()
	assert.ErrorIs(t, err, ErrInvalid)
}

// FuzzParse: the parsers never panic, and what they accept marshals and
// parses back to the same value (when it is marshallable).
func FuzzParse(f *testing.F) {
	pidf, _ := NewPIDF("sip:a@b", Open, "hi").Marshal()
	di, _ := (&DialogInfo{Entity: "sip:a@b", Dialogs: []Dialog{{ID: "1", State: Confirmed, Code: 200}}}).Marshal()
	f.Add(pidf)
	f.Add(di)
	f.Add([]byte(`<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" entity="x"><p:tuple id="a"/></p:presence>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParsePIDF(b); err == nil {
			if out, err := p.Marshal(); err == nil {
				p2, err := ParsePIDF(out)
				require.NoError(t, err, "%s", out)
				assert.Equal(t, len(p.Tuples), len(p2.Tuples))
				assert.Equal(t, p.Entity, p2.Entity)
			}
		} else {
			assert.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge), "%v", err)
		}
		if d, err := ParseDialogInfo(b); err == nil {
			if out, err := d.Marshal(); err == nil {
				d2, err := ParseDialogInfo(out)
				require.NoError(t, err, "%s", out)
				assert.Equal(t, len(d.Dialogs), len(d2.Dialogs))
				assert.Equal(t, d.Version, d2.Version)
			}
		} else {
			assert.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge), "%v", err)
		}
	})
}
