package interop

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// regRound is one registration round as our UserAgent saw it: the
// REGISTERs it took (nonce count of their credentials, "-" for none) and
// the answers.
type regRound struct {
	nc    []string
	codes []string // "401", "401 stale", "200"
}

// regTracer records the REGISTERs a UserAgent sends and their answers.
type regTracer struct {
	mu    sync.Mutex
	order []uint32
	nc    map[uint32]string
	code  map[uint32]string
	seen  map[uint32]bool
}

func newRegTracer() *regTracer {
	return &regTracer{nc: map[uint32]string{}, code: map[uint32]string{}, seen: map[uint32]bool{}}
}

var ncParam = regexp.MustCompile(`\bnc=([0-9a-fA-F]{8})`)

func (r *regTracer) Trace(ev trace.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m := ev.Message.(type) {
	case *message.Request:
		cs, err := m.Header.CSeq()
		if ev.Dir != trace.Sent || m.Method != "REGISTER" || err != nil || r.seen[cs.Seq] {
			return // not ours, or a retransmission
		}
		r.seen[cs.Seq] = true
		nc := "-"
		if mm := ncParam.FindStringSubmatch(m.Header.Get("Authorization")); mm != nil {
			nc = mm[1]
		}
		r.order = append(r.order, cs.Seq)
		r.nc[cs.Seq] = nc
	case *message.Response:
		cs, err := m.Header.CSeq()
		if ev.Dir != trace.Received || cs.Method != "REGISTER" || err != nil || m.StatusCode < 200 {
			return
		}
		c := fmt.Sprint(m.StatusCode)
		if strings.Contains(strings.ToLower(m.Header.Get("WWW-Authenticate")), "stale=true") {
			c += " stale"
		}
		r.code[cs.Seq] = c
	}
}

// rounds groups the REGISTERs into rounds, each ending with a final
// answer other than a challenge; an unfinished round is left out.
func (r *regTracer) rounds() []regRound {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []regRound
	var cur regRound
	for _, seq := range r.order {
		c, ok := r.code[seq]
		if !ok {
			break
		}
		cur.nc = append(cur.nc, r.nc[seq])
		cur.codes = append(cur.codes, c)
		if !strings.HasPrefix(c, "401") {
			out = append(out, cur)
			cur = regRound{}
		}
	}
	return out
}

func (r *regTracer) sent() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// TestKamailioNonceReuse: against Kamailio with nonce_count on
// (kamailio/nonce.cfg), a UserAgent registers with digest (401, then
// 200), and each refresh is ONE REGISTER reusing the nonce with the next
// nonce count; when the nonce expires (nonce_expire 3 s) the new
// challenge is answered in the same round and the registration never
// lapses: over UDP (alice) Kamailio says stale=true, over TCP (bob) it
// sends a plain 401, as a server that never says stale does. Counted on
// both sides: our UserAgent's Tracer and Kamailio's log line per
// REGISTER. UDP and TCP, in parallel.
func TestKamailioNonceReuse(t *testing.T) {
	k := StartKamailioWith(t, "kamailio/nonce.cfg", nil, "@NONCE_EXPIRE@", "3")
	for _, tc := range []struct {
		proto     transport.Proto
		user      string
		challenge string // Kamailio's answer to an expired nonce
	}{{transport.UDP, "alice", "401 stale"}, {transport.TCP, "bob", "401"}} {
		proto, user := tc.proto, tc.user
		t.Run(string(proto), func(t *testing.T) {
			t.Parallel()
			rec := newRegTracer()
			ua, err := sip.NewUserAgent(sip.UserAgentOptions{
				URI:                   "sip:" + user + "@" + Domain,
				AuthorizationPassword: Users[user],
				MediaFactory:          sip.NoMedia,
				Tracer:                rec,
				Transport: sip.TransportOptions{
					Server:            fmt.Sprintf("sip:127.0.0.1:%d;transport=%s", k.SIPPort, proto.Param()),
					KeepaliveInterval: -1,
				},
			})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			require.NoError(t, ua.Start(ctx))
			defer func() { assert.NoError(t, ua.Stop(context.Background())) }()
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: 2}) // refreshed every second
			require.NoError(t, err)
			var lapsed atomic.Int32
			reg.OnStateChange(func(s sip.RegistererState) {
				if s != sip.Registered {
					lapsed.Add(1)
				}
			})
			require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))

			// Wait for two refreshes in one REGISTER, then a stale round.
			single, stale := 0, 0
			deadline := time.Now().Add(12 * time.Second)
			for time.Now().Before(deadline) && (single < 2 || stale < 1) {
				time.Sleep(200 * time.Millisecond)
				single, stale = 0, 0
				for _, r := range rec.rounds()[1:] {
					switch {
					case len(r.nc) == 1:
						single++
					case len(r.codes) == 2 && r.codes[0] == tc.challenge:
						stale++
					}
				}
			}
			assert.Zero(t, lapsed.Load(), "the registration never lapsed")
			require.NoError(t, reg.Unregister(ctx, sip.UnregisterOptions{}))

			rounds := rec.rounds()
			var lines []string
			for _, r := range rounds {
				lines = append(lines, fmt.Sprintf("%v %v", r.nc, r.codes))
			}
			t.Logf("REGISTER rounds over %s (nc per REGISTER, answers):\n%s", proto, strings.Join(lines, "\n"))
			require.GreaterOrEqual(t, len(rounds), 4)
			assert.Equal(t, regRound{nc: []string{"-", "00000001"}, codes: []string{"401", "200"}}, rounds[0], "the first REGISTER is challenged")
			assert.GreaterOrEqual(t, single, 2, "refreshes in one REGISTER")
			assert.GreaterOrEqual(t, stale, 1, "an expired nonce's challenge answered within its round")
			for i, r := range rounds[1:] {
				assert.Equal(t, "200", r.codes[len(r.codes)-1], "round %d", i+1)
				switch len(r.nc) {
				case 1:
					assert.NotEqual(t, "-", r.nc[0], "round %d reuses the nonce", i+1)
					assert.NotEqual(t, "00000001", r.nc[0], "round %d reuses the nonce", i+1)
				case 2:
					assert.Equal(t, tc.challenge, r.codes[0], "round %d", i+1)
					assert.Equal(t, "00000001", r.nc[1], "round %d: the new nonce", i+1)
				default:
					t.Errorf("round %d took %d REGISTERs: %v %v", i+1, len(r.nc), r.nc, r.codes)
				}
			}

			// Kamailio's side: one log line per REGISTER it processed.
			want := rec.sent()
			pat := regexp.MustCompile(`NONCE-REGISTER cseq=\d+ user=` + user + ` `)
			require.Eventually(t, func() bool { return len(pat.FindAllString(k.Log(), -1)) >= want }, 3*time.Second, 50*time.Millisecond)
			assert.Len(t, pat.FindAllString(k.Log(), -1), want, "Kamailio saw the REGISTERs we sent, no more")
		})
	}
}
