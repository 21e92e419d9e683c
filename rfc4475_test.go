package sip

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRFC4475ThroughUserAgent sends every RFC 4475 torture message as a
// datagram to a running UserAgent and checks the answer its UAS core
// gives, as expected.tsv describes. The peer listens on ports 5060 and
// 5050 of a loopback address of its own, where the messages' Via headers
// (with received added) send the responses.
func TestRFC4475ThroughUserAgent(t *testing.T) {
	p5060, p5050 := rawPair(t, 5060, 5050)

	// The answer expected per file: a status code, 0 for "no answer"
	// (responses, and requests too broken to answer), -1 for "any answer
	// or none" (tolerable).
	want := map[string]int{
		// valid
		"wsinv": 481, "intmeth": 501, "esc01": 480, "esc02": 501, "escnull": 405, "lwsdisp": 200,
		"longreq": 480, "dblreq": 405, "semiuri": 200, "transports": 200, "mpart01": 405,
		"unreason": 0, "noreason": 0,
		// invalid: 400 (505 for the version) when the request can be read
		// far enough to answer, nothing otherwise
		"badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "scalarlg": 0, "quotbal": 400,
		"ltgtruri": 400, "lwsruri": 0, "escruri": 400, "regbadct": 400, "badvers": 505,
		"mismatch01": 400, "mismatch02": 400, "bigcode": 0,
		// tolerable
		"lwsstart": -1, "trws": -1, "baddate": -1, "badaspec": -1, "baddn": -1,
		// semantic
		"badbranch": 200, "insuf": 400, "unkscm": 416, "novelsc": 416, "unksm2": 405, "bext01": 420,
		"invut": 415, "regaut01": 405, "multi01": 400, "mcl01": 400, "bcast": 0, "zeromf": 200,
		"cparam01": 405, "cparam02": 405, "regescrt": 405, "sdp01": 406, "inv2543": 480,
	}
	f, err := os.Open(filepath.Join("testdata", "rfc4475", "expected.tsv"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.SplitN(line, "\t", 2)[0]
		code, ok := want[name]
		require.True(t, ok, "no expectation for %s", name)
		seen++
		t.Run(name, func(t *testing.T) {
			// A UserAgent per message: many of them share a branch, and a
			// shared one would take them for retransmissions.
			ua := startUA(t, "bob", UserAgentDelegate{})
			to := ua.listenAddrs[0].addr.String()
			data, err := os.ReadFile(filepath.Join("testdata", "rfc4475", name+".dat"))
			require.NoError(t, err)
			p5060.send(to, data)
			callID := callIDOf(data)
			got := 0
			var resp interface{ String() string }
			for _, p := range []*raw{p5060, p5050} {
				wait := 300 * time.Millisecond
				if code <= 0 {
					wait = 150 * time.Millisecond
				}
				// Skip retransmissions of answers to earlier messages.
				r := p.recv(wait)
				for r != nil && r.Header.CallID() != callID {
					r = p.recv(wait)
				}
				if r != nil {
					got = r.StatusCode
					resp = r
					if name == "bext01" {
						assert.Equal(t, "nothingSupportsThis, nothingSupportsThisEither", r.Header.Get("Unsupported"))
					}
					if name == "invut" || name == "sdp01" {
						assert.Equal(t, "application/sdp", r.Header.Get("Accept"))
					}
					if code == 405 || code == 501 {
						assert.NotEmpty(t, r.Header.Get("Allow"))
					}
					break
				}
			}
			if code >= 0 {
				assert.Equal(t, code, got, "answer to %s: %v", name, resp)
			}
		})
	}
	require.NoError(t, sc.Err())
	assert.Equal(t, 49, seen)
}

var callIDLine = regexp.MustCompile(`(?im)^(?:call-id|i)[ \t]*:[ \t]*(\S+)`)

func callIDOf(data []byte) string {
	if m := callIDLine.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return ""
}
