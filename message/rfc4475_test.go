package message

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type tortureCase struct {
	file, section, class, what string
}

func loadTorture(t testing.TB) []tortureCase {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "rfc4475", "expected.tsv"))
	require.NoError(t, err)
	defer f.Close()
	var out []tortureCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.SplitN(line, "\t", 4)
		require.Len(t, p, 4, line)
		out = append(out, tortureCase{p[0], p[1], p[2], p[3]})
	}
	require.NoError(t, sc.Err())
	return out
}

func readTorture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "rfc4475", name+".dat"))
	require.NoError(t, err)
	return b
}

// checkRoundTrip writes m, parses the result and writes it again: both
// writes must be identical and the second parse must validate alike.
func checkRoundTrip(t *testing.T, m Message) {
	t.Helper()
	w1 := m.AppendTo(nil)
	m2, err := Parse(w1)
	require.NoError(t, err, "re-parse of written message:\n%s", w1)
	w2 := m2.AppendTo(nil)
	assert.Equal(t, string(w1), string(w2))
	assert.Equal(t, m.Validate() == nil, m2.Validate() == nil)
}

func TestRFC4475(t *testing.T) {
	cases := loadTorture(t)
	require.Len(t, cases, 49)
	counts := map[string]int{}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			raw := readTorture(t, tc.file)
			m, perr := Parse(raw)
			var verr error
			if perr == nil {
				verr = m.Validate()
			}
			switch tc.class {
			case "valid":
				require.NoError(t, perr, tc.what)
				require.NoError(t, verr, tc.what)
				checkRoundTrip(t, m)
			case "invalid":
				err := perr
				if err == nil {
					err = verr
				}
				require.Error(t, err, "%s must be rejected: %s", tc.file, tc.what)
				var pe *ParseError
				require.True(t, errors.As(err, &pe), "typed error")
				want := 400
				if tc.file == "badvers" {
					want = 505
					assert.ErrorIs(t, err, ErrVersion)
				}
				if _, isResp := m.(*Response); isResp || strings.HasPrefix(string(raw), "SIP/") {
					// A malformed response is dropped; no status applies.
					break
				}
				assert.Equal(t, want, StatusCode(err), "status for %v", err)
			case "tolerable":
				// Either outcome; it must not panic and must be typed.
				if perr != nil {
					var pe *ParseError
					assert.True(t, errors.As(perr, &pe))
				} else if verr == nil {
					checkRoundTrip(t, m)
				}
			case "semantic":
				if tc.file == "mcl01" {
					// Two Content-Length values: the framing is refused, but
					// the header section is handed over so a UAS can answer 400.
					var pe *ParseError
					require.True(t, errors.As(perr, &pe), "typed error, got %v", perr)
					assert.ErrorIs(t, perr, ErrContentLength)
					assert.Equal(t, 400, pe.Status)
					require.NotNil(t, pe.Message)
					assert.Equal(t, "mcl01.fhn2323orihawfdoa3o4r52o3irsdf", pe.Message.Headers().CallID())
					break
				}
				require.NoError(t, perr, tc.what)
				checkSemantic(t, tc.file, m, verr)
			default:
				t.Fatalf("unknown class %q", tc.class)
			}
			counts[tc.class]++
		})
	}
	assert.Equal(t, map[string]int{"valid": 13, "invalid": 14, "tolerable": 5, "semantic": 17}, counts)
}

// checkSemantic asserts the facts the UA core acts on for each semantic
// torture message.
func checkSemantic(t *testing.T, file string, m Message, verr error) {
	h := m.Headers()
	req, _ := m.(*Request)
	switch file {
	case "badbranch":
		require.NoError(t, verr)
		v, err := h.TopVia()
		require.NoError(t, err)
		assert.Equal(t, MagicCookie, v.Branch())
	case "insuf":
		require.Error(t, verr)
		assert.ErrorIs(t, verr, ErrMissingHeader)
		assert.Equal(t, 400, StatusCode(verr))
	case "unkscm":
		require.NoError(t, verr)
		assert.Equal(t, "nobodyknowsthisscheme", req.URI.Scheme)
		assert.False(t, req.URI.IsSIP())
		assert.Equal(t, "totallyopaquecontent", req.URI.Opaque)
	case "novelsc":
		require.NoError(t, verr)
		assert.Equal(t, "soap.beep", req.URI.Scheme)
		assert.False(t, req.URI.IsSIP())
	case "unksm2":
		require.NoError(t, verr)
		to, err := h.To()
		require.NoError(t, err)
		assert.Equal(t, "isbn", to.URI.Scheme)
		from, _ := h.From()
		assert.Equal(t, "http", from.URI.Scheme)
		c, err := h.Contacts()
		require.NoError(t, err)
		require.Len(t, c, 1)
		assert.Equal(t, "name", c[0].URI.Scheme)
	case "bext01":
		require.NoError(t, verr)
		assert.Equal(t, []string{"nothingSupportsThis", "nothingSupportsThisEither"}, h.Tokens("Require"))
		assert.Equal(t, []string{"noProxiesSupportThis", "norDoAnyProxiesSupportThis"}, h.Tokens("Proxy-Require"))
	case "invut":
		require.NoError(t, verr)
		assert.Equal(t, "application/unknownformat", h.MediaType())
		assert.Len(t, m.Content(), 40)
	case "regaut01":
		require.NoError(t, verr)
		a, err := ParseAuth(h.Get("Authorization"))
		require.NoError(t, err)
		assert.Equal(t, "NoOneKnowsThisScheme", a.Scheme)
	case "multi01":
		require.Error(t, verr)
		assert.ErrorIs(t, verr, ErrDuplicateHeader)
		assert.Equal(t, 400, StatusCode(verr))
	case "bcast":
		require.NoError(t, verr)
		vias, err := h.Vias()
		require.NoError(t, err)
		require.Len(t, vias, 2, "a UAC discards a response with more than one Via")
		assert.Equal(t, "255.255.255.255", vias[1].Host)
	case "zeromf":
		require.NoError(t, verr)
		mf, ok, err := h.MaxForwards()
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, 0, mf)
	case "cparam01":
		require.NoError(t, verr)
		c, err := h.Contacts()
		require.NoError(t, err)
		require.Len(t, c, 1)
		assert.Equal(t, Params(""), c[0].URI.Params)
		assert.True(t, c[0].Params.Has("unknownparam"), "addr-spec: the parameter is a header parameter")
	case "cparam02":
		require.NoError(t, verr)
		c, err := h.Contacts()
		require.NoError(t, err)
		require.Len(t, c, 1)
		assert.True(t, c[0].URI.Params.Has("unknownparam"), "name-addr: the parameter belongs to the URI")
		assert.Equal(t, Params(""), c[0].Params)
	case "regescrt":
		require.NoError(t, verr)
		c, err := h.Contacts()
		require.NoError(t, err)
		require.Len(t, c, 1)
		assert.Equal(t, "Route=%3Csip:sip.example.com%3E", c[0].URI.Headers)
	case "sdp01":
		require.NoError(t, verr)
		assert.Equal(t, []string{"text/nobodyKnowsThis"}, h.Tokens("Accept"))
		assert.Equal(t, "application/sdp", h.MediaType())
	case "inv2543":
		require.NoError(t, verr)
		v, err := h.TopVia()
		require.NoError(t, err)
		assert.Equal(t, "", v.Branch(), "RFC 2543 request: no branch, matched by the old rules")
		_, present, _ := h.MaxForwards()
		assert.False(t, present)
	default:
		t.Fatalf("no semantic check for %s", file)
	}
}
