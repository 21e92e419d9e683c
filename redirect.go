package sip

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sipua/sip/message"
)

// DefaultMaxRedirects is how many 3xx responses an Inviter follows when
// InviterOptions.MaxRedirects is zero.
const DefaultMaxRedirects = 3

// ErrRedirectFailed reports a 3xx response that could not be followed: it
// had no usable Contact, its Contacts had all been tried already (a
// redirect loop), or InviterOptions.MaxRedirects was reached. The error
// also wraps the *ResponseError of the 3xx.
var ErrRedirectFailed = errors.New("sip: redirect not followed")

// redirectState is an Inviter's target set (RFC 3261 §8.1.3.4). Owned by
// the loop.
type redirectState struct {
	followed int                 // 3xx responses followed
	tried    map[string]struct{} // targets INVITEd, by normalized URI
	pending  []message.URI       // targets learned and not yet tried, in order
}

// targetKey normalizes a URI for loop detection: scheme, user, host
// (case-insensitive) and port.
func targetKey(u message.URI) string {
	return strings.ToLower(u.Scheme) + ":" + u.User + "@" + strings.ToLower(u.Host) + ":" + strconv.Itoa(u.Port)
}

// qValue returns a Contact's q parameter (default 1.0, RFC 3261 §20.10).
func qValue(a message.Address) float64 {
	v, ok := a.Params.Get("q")
	if !ok {
		return 1
	}
	q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || q < 0 || q > 1 {
		return 0
	}
	return q
}

// redirect follows a 3xx: its Contacts join the target set in q order
// (then order of appearance), and the next untried target gets a new
// INVITE (same Call-ID, From tag and To, next CSeq, new branch). It
// reports false when redirects are not followed; otherwise it has either
// sent the new INVITE or ended the call with an error wrapping
// ErrRedirectFailed. Runs on the loop.
func (i *Inviter) redirect(resp *message.Response, opts InviteOptions, answered chan<- *message.Response) bool {
	max := i.opts.MaxRedirects
	if max == 0 {
		max = DefaultMaxRedirects
	}
	if max < 0 || i.cancelPending || i.ended {
		return false
	}
	r := &i.redir
	if r.tried == nil {
		r.tried = map[string]struct{}{targetKey(i.invite.URI): {}}
	}
	fail := func(why string) bool {
		err := fmt.Errorf("%w: %s: %w", ErrRedirectFailed, why, responseError(resp))
		i.terminate(EndReason{Cause: EndRejected, StatusCode: resp.StatusCode, Err: err})
		i.finish(err)
		return true
	}
	contacts, err := resp.Header.Contacts()
	if err != nil {
		return fail("unreadable Contact")
	}
	type cand struct {
		u message.URI
		q float64
	}
	var cands []cand
	loop := false
	for _, c := range contacts {
		if c.Wildcard || !c.URI.IsSIP() || c.URI.Host == "" {
			continue
		}
		k := targetKey(c.URI)
		if _, seen := r.tried[k]; seen {
			loop = true
			continue
		}
		if slices.ContainsFunc(r.pending, func(u message.URI) bool { return targetKey(u) == k }) {
			continue
		}
		cands = append(cands, cand{c.URI, qValue(c)})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	// Targets of this 3xx come before those left from earlier ones: it
	// answered the latest request (a recursive redirect).
	next := make([]message.URI, 0, len(cands)+len(r.pending))
	for _, c := range cands {
		next = append(next, c.u)
	}
	r.pending = append(next, r.pending...)
	if len(r.pending) == 0 {
		if loop {
			return fail("redirect loop")
		}
		return fail("no usable Contact")
	}
	if r.followed >= max {
		return fail(fmt.Sprintf("limit of %d redirects reached", max))
	}
	r.followed++
	target := r.pending[0]
	r.pending = r.pending[1:]
	r.tried[targetKey(target)] = struct{}{}
	target.Headers = "" // headers in a Contact are not applied
	req := i.invite.Clone()
	req.URI = target
	bumpCSeq(req)
	req.Header.Del("Authorization")
	req.Header.Del("Proxy-Authorization")
	i.ua.log.Debug("sip: following redirect", "code", resp.StatusCode, "target", target.String())
	// A new transaction: its early dialogs and provisional state are new
	// (an early answer already applied stays, to be replaced).
	i.forks.early = nil
	i.provisional = false
	i.invite = req
	if err := i.start(req, opts, answered); err != nil {
		i.finish(err)
	}
	return true
}
