package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipua/sip/message"
)

// RegistererState is the state of a Registerer, as SIP.js's.
type RegistererState int

// Registerer states.
const (
	RegistererInitial RegistererState = iota
	Registered
	Unregistered
	RegistererTerminated
)

func (s RegistererState) String() string {
	switch s {
	case RegistererInitial:
		return "Initial"
	case Registered:
		return "Registered"
	case Unregistered:
		return "Unregistered"
	case RegistererTerminated:
		return "Terminated"
	}
	return "Unknown"
}

// RegistererOptions configures a Registerer. The zero value works.
type RegistererOptions struct {
	// Expires is the registration lifetime asked for, in seconds.
	// Default 600.
	Expires uint32
	// RefreshFraction is the part of the granted lifetime after which the
	// registration is refreshed. Default 0.9. At least 5 s (or half the
	// lifetime, if shorter) are always left, so short lifetimes work.
	RefreshFraction float64
	// Registrar is the Request-URI of REGISTER. Default: the domain of
	// the address of record (sip:example.com).
	Registrar string
	// ExtraHeaders are added to every REGISTER, as "Name: value".
	ExtraHeaders []string
	// RegID is the RFC 5626 reg-id sent with the UserAgent's InstanceID.
	// Default 1.
	RegID int
	// RetryMin and RetryMax bound the back-off between attempts when a
	// refresh fails (a Retry-After from the registrar wins). Defaults 5 s
	// and 5 min.
	RetryMin, RetryMax time.Duration
}

// RegisterOptions are the options of one Register call.
type RegisterOptions struct {
	// ExtraHeaders are added to this REGISTER, as "Name: value".
	ExtraHeaders []string
}

// UnregisterOptions are the options of Unregister.
type UnregisterOptions struct {
	// All removes every binding of the address of record (Contact: *),
	// not only this UserAgent's.
	All bool
	// ExtraHeaders are added to this REGISTER, as "Name: value".
	ExtraHeaders []string
}

// Binding is a contact the registrar holds for the address of record.
type Binding struct {
	Contact message.Address
	Expires time.Duration
	// Mine is true for this UserAgent's own binding.
	Mine bool
	// PubGRUU and TempGRUU are the GRUUs the registrar assigned to the
	// binding (RFC 5627), when it supports them and the UserAgent has an
	// InstanceID.
	PubGRUU, TempGRUU string
}

// Registerer registers the UserAgent's contact with its registrar and
// keeps the registration fresh (REGISTER, RFC 3261 §10). After the
// connection to the server is lost it is Unregistered (the registrar can
// no longer reach this side through that connection); once the
// connection is made again, it registers again on it by itself.
type Registerer struct {
	ua   *UserAgent
	opts RegistererOptions
	uri  message.URI

	st       stateBox[RegistererState]
	mu       sync.Mutex // guards bindings
	bindings []Binding

	// Owned by the event loop.
	callID   string
	fromTag  string
	cseq     uint32
	wanted   bool // keep registered: refresh, retry, re-register after reconnect
	refresh  *timerEntry
	failures int
	expires  uint32
	added    bool
}

// NewRegisterer returns a Registerer for ua. It sends nothing until
// Register.
func NewRegisterer(ua *UserAgent, opts RegistererOptions) (*Registerer, error) {
	if opts.Expires == 0 {
		opts.Expires = 600
	}
	if opts.RefreshFraction <= 0 || opts.RefreshFraction >= 1 {
		opts.RefreshFraction = 0.9
	}
	if opts.RegID == 0 {
		opts.RegID = 1
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 5 * time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	uri := message.URI{Scheme: ua.aor.Scheme, Host: ua.aor.Host, Port: ua.aor.Port}
	if opts.Registrar != "" {
		u, err := message.ParseURI(opts.Registrar)
		if err != nil {
			return nil, fmt.Errorf("%w: Registrar: %w", ErrBadOptions, err)
		}
		uri = u
	}
	for _, h := range opts.ExtraHeaders {
		if _, _, ok := strings.Cut(h, ":"); !ok {
			return nil, fmt.Errorf("%w: extra header %q: want \"Name: value\"", ErrBadOptions, h)
		}
	}
	return &Registerer{
		ua: ua, opts: opts, uri: uri,
		callID:  message.NewCallID(),
		fromTag: message.NewTag(),
		cseq:    uint32(time.Now().UnixNano()%100000) + 1,
		expires: opts.Expires,
	}, nil
}

// State returns the current state.
func (r *Registerer) State() RegistererState { return r.st.get() }

// Bindings returns the bindings the registrar reported in its last 2xx.
func (r *Registerer) Bindings() []Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Binding(nil), r.bindings...)
}

// GRUU returns the public and temporary GRUU (RFC 5627) the registrar
// gave this UserAgent's binding, or "".
func (r *Registerer) GRUU() (pub, temp string) {
	for _, b := range r.Bindings() {
		if b.Mine {
			return b.PubGRUU, b.TempGRUU
		}
	}
	return "", ""
}

// OnStateChange adds a state listener and returns a function removing it.
// Listeners run on the UserAgent's callback goroutine, in order.
func (r *Registerer) OnStateChange(f func(RegistererState)) (remove func()) {
	return r.st.listen(f)
}

func (r *Registerer) setState(s RegistererState) {
	if r.st.set(s, RegistererTerminated, &r.ua.cbq) {
		r.obsRegistration(s)
	}
}

// Register sends REGISTER and waits for the registrar's final answer. On
// success the Registerer is Registered and refreshes the registration
// until Unregister. A rejection is returned as a *ResponseError; refused
// credentials as an error wrapping ErrAuthFailed. A 423 Interval Too Brief
// is retried once with the registrar's Min-Expires.
func (r *Registerer) Register(ctx context.Context, opts RegisterOptions) error {
	errc := make(chan error, 1)
	if err := r.ua.call(ctx, func() {
		if r.State() == RegistererTerminated {
			errc <- fmt.Errorf("%w: registerer terminated", ErrInvalidState)
			return
		}
		if !r.added {
			r.ua.registerers[r] = struct{}{}
			r.added = true
		}
		r.wanted = true
		r.failures = 0
		r.ua.timers.stop(r.refresh)
		r.send(r.expires, false, opts.ExtraHeaders, false, func(err error) { errc <- err })
	}); err != nil {
		return err
	}
	return r.ua.await(ctx, errc)
}

// Unregister removes this UserAgent's binding (or all bindings of the
// address of record with All) and stops refreshing.
func (r *Registerer) Unregister(ctx context.Context, opts UnregisterOptions) error {
	errc := make(chan error, 1)
	if err := r.ua.call(ctx, func() {
		r.wanted = false
		r.ua.timers.stop(r.refresh)
		r.send(0, opts.All, opts.ExtraHeaders, false, func(err error) { errc <- err })
	}); err != nil {
		return err
	}
	return r.ua.await(ctx, errc)
}

// Dispose unregisters if registered and ends the Registerer for good.
func (r *Registerer) Dispose(ctx context.Context) error {
	var err error
	if r.State() == Registered {
		err = r.Unregister(ctx, UnregisterOptions{})
	}
	r.dispose()
	return err
}

func (r *Registerer) dispose() {
	_ = r.ua.call(context.Background(), func() {
		r.wanted = false
		r.ua.timers.stop(r.refresh)
		delete(r.ua.registerers, r)
	})
	r.setState(RegistererTerminated)
}

// contact returns the Contact of this registration.
func (r *Registerer) contact() message.Address {
	c := r.ua.contactAddress()
	if id := r.ua.opts.InstanceID; id != "" {
		c.Params = c.Params.Set("+sip.instance", `"<`+id+`>"`).Set("reg-id", strconv.Itoa(r.opts.RegID))
	}
	return c
}

func (r *Registerer) build(expires uint32, all bool, extra []string) *message.Request {
	from := message.Address{DisplayName: r.ua.opts.DisplayName, URI: r.ua.aor, Params: message.Params("tag=" + r.fromTag)}
	to := message.Address{DisplayName: r.ua.opts.DisplayName, URI: r.ua.aor}
	req := &message.Request{Method: "REGISTER", URI: r.uri}
	h := &req.Header
	h.Add("From", from.String())
	h.Add("To", to.String())
	h.Add("Call-ID", r.callID)
	r.cseq++
	h.Add("CSeq", message.CSeq{Seq: r.cseq, Method: "REGISTER"}.String())
	h.Add("Max-Forwards", "70")
	if all {
		h.Add("Contact", "*")
	} else {
		h.Add("Contact", r.contact().String())
	}
	h.Add("Expires", strconv.FormatUint(uint64(expires), 10))
	if r.ua.opts.InstanceID != "" {
		h.Add("Supported", "path, outbound, gruu")
	}
	for _, x := range append(append([]string(nil), r.opts.ExtraHeaders...), extra...) {
		n, v, _ := strings.Cut(x, ":")
		h.Add(strings.TrimSpace(n), strings.TrimSpace(v))
	}
	return req
}

// send sends one REGISTER (runs on the loop) and reports its outcome to
// done on the loop.
func (r *Registerer) send(expires uint32, all bool, extra []string, retried423 bool, done func(error)) {
	req := r.build(expires, all, extra)
	o := &outgoing{req: req}
	o.rebuild = nextCSeq(&r.cseq)
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		switch {
		case resp.StatusCode < 300:
			r.onSuccess(resp, expires, req)
			done(nil)
		case resp.StatusCode == 423 && !retried423 && expires > 0:
			min, ok, _ := resp.Header.MinExpires()
			if ok && min > expires {
				r.expires = min
				r.send(min, all, extra, true, done)
				return
			}
			r.onFailure(resp, expires)
			done(responseError(resp))
		default:
			r.onFailure(resp, expires)
			done(responseError(resp))
		}
	}
	o.onError = func(err error) {
		if errors.Is(err, ErrAuthFailed) {
			// Refused credentials: retrying would only be refused again.
			r.wanted = false
		}
		r.onFailure(nil, expires)
		done(err)
	}
	if err := r.ua.send(o); err != nil {
		r.onFailure(nil, expires)
		done(err)
	}
}

func (r *Registerer) onSuccess(resp *message.Response, asked uint32, req *message.Request) {
	r.failures = 0
	if asked == 0 {
		r.mu.Lock()
		r.bindings = nil
		r.mu.Unlock()
		r.setState(Unregistered)
		return
	}
	granted := asked
	if e, ok, err := resp.Header.Expires(); ok && err == nil {
		granted = e
	}
	mine, _ := req.Header.Contacts()
	var bindings []Binding
	if contacts, err := resp.Header.Contacts(); err == nil {
		for _, c := range contacts {
			exp := granted
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.ParseUint(v, 10, 32); err == nil {
					exp = uint32(n)
				}
			}
			b := Binding{Contact: c, Expires: time.Duration(exp) * time.Second}
			if v, ok := c.Params.Get("pub-gruu"); ok {
				b.PubGRUU = message.Unquote(v)
			}
			if v, ok := c.Params.Get("temp-gruu"); ok {
				b.TempGRUU = message.Unquote(v)
			}
			if len(mine) == 1 && sameContact(c.URI, mine[0].URI) {
				granted = exp
				b.Mine = true
			}
			bindings = append(bindings, b)
		}
	}
	r.mu.Lock()
	r.bindings = bindings
	r.mu.Unlock()
	if granted == 0 {
		// The registrar did not keep our binding.
		r.setState(Unregistered)
		return
	}
	r.setState(Registered)
	if r.wanted {
		r.scheduleRefresh(time.Duration(granted) * time.Second)
	}
}

// sameContact compares the user, host and port of two contacts: a
// registrar may add parameters (alias, received …).
func sameContact(a, b message.URI) bool {
	return a.User == b.User && strings.EqualFold(a.Host, b.Host) && a.Port == b.Port
}

func (r *Registerer) scheduleRefresh(lifetime time.Duration) {
	margin := time.Duration(float64(lifetime) * (1 - r.opts.RefreshFraction))
	if min := min(5*time.Second, lifetime/2); margin < min {
		margin = min
	}
	r.ua.timers.stop(r.refresh)
	at := time.Now().Add(lifetime - margin)
	if r.ua.stack != nil && lifetime-margin >= 2*refreshGrid {
		// The accounts of a Stack refresh on a grid, a little early, so
		// that refreshes falling due near each other share one wake-up
		// of the loop (10 000 accounts at Expires 60: one a second, not
		// 185).
		at = at.Truncate(refreshGrid)
	}
	r.refresh = r.ua.afterAt(at, func() {
		if r.wanted {
			r.send(r.expires, false, nil, false, func(error) {})
		}
	})
}

// refreshGrid is the grid of a Stack's registration refreshes.
const refreshGrid = time.Second

func (r *Registerer) onFailure(resp *message.Response, asked uint32) {
	if asked == 0 {
		return // a failed unregistration leaves the state as it was
	}
	r.setState(Unregistered)
	if !r.wanted {
		return
	}
	// Keep trying: Retry-After when the registrar gives one, else
	// exponential back-off.
	r.failures++
	delay := r.opts.RetryMin << min(r.failures-1, 10)
	if delay > r.opts.RetryMax {
		delay = r.opts.RetryMax
	}
	if resp != nil {
		if ra, ok, err := resp.Header.RetryAfter(); ok && err == nil && ra > 0 {
			delay = time.Duration(ra) * time.Second
		}
		if resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode == 407 {
			// Refused credentials: retrying would only be refused again.
			r.wanted = false
			return
		}
	}
	r.ua.timers.stop(r.refresh)
	r.refresh = r.ua.after(delay, func() {
		if r.wanted {
			r.send(r.expires, false, nil, false, func(error) {})
		}
	})
}

// reregisterWait bounds how long calls wait for the registrations on a
// new connection before they are moved to it.
const reregisterWait = 5 * time.Second

// onReconnected registers again on a new connection; done runs (on the
// loop) once the registrar has answered, or at once when the Registerer
// is not registering.
func (r *Registerer) onReconnected(done func()) {
	if !r.wanted {
		done()
		return
	}
	r.ua.timers.stop(r.refresh)
	r.send(r.expires, false, nil, false, func(error) { done() })
}

// reregister renews every registration on a new connection and runs then
// (on the loop) when all have been answered, or after reregisterWait at
// the latest. Runs on the loop.
func (ua *UserAgent) reregister(then func()) {
	pending := len(ua.registerers) + 1
	fired := false
	fire := func() {
		if !fired {
			fired = true
			then()
		}
	}
	t := ua.after(reregisterWait, fire)
	one := func() {
		pending--
		if pending == 0 {
			ua.timers.stop(t)
			fire()
		}
	}
	for r := range ua.registerers {
		r.onReconnected(one)
	}
	one()
}
