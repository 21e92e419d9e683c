package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// StackOptions configures a Stack: what its accounts share. Every field
// is optional.
type StackOptions struct {
	// Transport says how the Stack reaches the network, as for a
	// UserAgent of its own: one Server (or failover list) whose one
	// connection (WS, WSS, TCP, TLS) or UDP socket carries every account,
	// Listen addresses, TLS, keepalive, reconnect, limits of connections
	// (MaxConns), of messages (MessageLimits) and of the write queue
	// (WriteQueue, default DefaultStackWriteQueue), DialContext and DNS.
	// After a reconnect the accounts register again 500 at a time, 100 ms
	// apart.
	Transport TransportOptions
	// Logger receives the Stack's logs (transport, transactions) and
	// those of accounts that have no Logger of their own. Nil: silent.
	Logger *slog.Logger
	// Tracer sees every SIP message of every account (see
	// UserAgentOptions.Tracer). Nil: nothing is traced.
	Tracer trace.Tracer
	// Observer receives transaction and connection events, and the call
	// and registration events of accounts that have no Observer of their
	// own. Nil: nothing is reported.
	Observer *Observer
	// Timers are the RFC 3261 timers of the shared transaction layer.
	// Zero fields: the defaults.
	Timers Timers
	// UserAgentString is the Server header of the answers the Stack
	// gives by itself (404 for an unknown account, 503 when overloaded,
	// 400 to bad input). Default "sipua"; "-" sends none.
	UserAgentString string
	// AcceptOnlyFromServer takes requests only from the Stack's server,
	// as UserAgentOptions.AcceptOnlyFromServer does; NewStack fails with
	// ErrBadOptions when no server is configured.
	AcceptOnlyFromServer bool
	// Limits bounds the Stack as a whole.
	Limits StackLimits
}

// StackLimits bounds what a Stack takes on. The zero value selects the
// documented defaults; a negative field means no limit. Limits of each
// account (UserAgentOptions.Limits.MaxPendingInvites) stay the account's.
type StackLimits struct {
	// MaxAccounts caps the UserAgents on the Stack (made and not yet
	// stopped); Stack.NewUserAgent past it fails with
	// ErrTooManyAccounts. Default
	// 100000.
	MaxAccounts int
	// MaxServerTransactions caps the server transactions of all accounts
	// together, as Limits.MaxServerTransactions does for one UserAgent
	// (503 with Retry-After past it). Default 65536.
	MaxServerTransactions int
	// RetryAfter is the Retry-After of the Stack's 503 responses.
	// Default 5 s.
	RetryAfter time.Duration
}

const defaultMaxAccounts = 100000

// DefaultStackWriteQueue is a Stack's TransportOptions.WriteQueue
// default: the messages that may wait on its one connection, which
// carries every account's registrations and calls.
const DefaultStackWriteQueue = 16384

// ErrTooManyAccounts reports a Stack.NewUserAgent past
// StackLimits.MaxAccounts.
var ErrTooManyAccounts = errors.New("sip: too many accounts on the stack")

// StackOptionError is returned by Stack.NewUserAgent for an option that
// belongs to the Stack and conflicts with it (a Transport, a Tracer, other
// Timers …). It wraps ErrBadOptions.
type StackOptionError struct {
	// Field names the UserAgentOptions field.
	Field string
}

func (e *StackOptionError) Error() string {
	return fmt.Sprintf("sip: %s is the Stack's, not an account's: set it in StackOptions", e.Field)
}

// Unwrap returns ErrBadOptions.
func (e *StackOptionError) Unwrap() error { return ErrBadOptions }

// Stack serves many UserAgents (accounts) from one set of sockets and
// connections, one event loop and one transaction layer, so that the
// goroutines and buffers of a process do not grow with its accounts: a
// gateway, a bot farm or a load generator keeps thousands of
// registrations with one Stack. Make accounts with NewUserAgent; each is
// a UserAgent as usual (Registerer, Inviter, Invitation, Subscriber,
// Messager … work per account), with its own address of record,
// credentials (and digest state), Contact, delegate and callback lanes.
//
// Requests outside a dialog go to the account whose address-of-record
// user is the Request-URI's user (and host, when several accounts share
// a user; the first made otherwise), else whose Contact user
// (UserAgentOptions.ContactName, a distinct random token by default) it
// is, which is what a registrar that rewrites the Request-URI to the
// registered Contact delivers, else whose InstanceID is the URI's gr
// parameter (GRUU); an unknown one is answered 404 Not Found (an OPTIONS
// to the Stack's address without a user, a health check, 200 OK). In-dialog
// requests and responses find their account through the shared dialogs
// and transactions. A CANCEL goes where its INVITE went.
//
// The server connection is the Stack's: its keepalive and reconnect are
// per connection, and after a reconnect every account renews its
// registrations and moves its calls, as a UserAgent of its own does.
// A Stack has one server (or one failover list): accounts that use
// another server go on a Stack of their own. The accounts' registrations
// are refreshed on a one-second grid (up to a second early), so that
// refreshes falling due together cost the loop one wake-up.
type Stack struct {
	core *core
	opts StackOptions

	mu    sync.Mutex
	phase int32 // uaNew, uaStarted, uaStopped
	uas   map[*UserAgent]struct{}
	done  chan struct{}
}

// NewStack checks opts and returns a Stack that is not started.
func NewStack(opts StackOptions) (*Stack, error) {
	if opts.UserAgentString == "" {
		opts.UserAgentString = defaultUserAgentString
	}
	if opts.AcceptOnlyFromServer && opts.Transport.Server == "" && len(opts.Transport.Servers) == 0 {
		return nil, fmt.Errorf("%w: AcceptOnlyFromServer needs Transport.Server or Servers", ErrBadOptions)
	}
	for _, l := range opts.Transport.Listen {
		if _, _, err := parseListen(l); err != nil {
			return nil, err
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts.Logger = log
	if opts.Transport.WriteQueue == 0 {
		opts.Transport.WriteQueue = DefaultStackWriteQueue
	}
	lim := Limits{MaxServerTransactions: opts.Limits.MaxServerTransactions, RetryAfter: opts.Limits.RetryAfter}.norm()
	s := &Stack{
		opts: opts,
		uas:  map[*UserAgent]struct{}{},
		done: make(chan struct{}),
		core: newCore(coreConfig{
			log:                  log,
			transport:            opts.Transport,
			timers:               opts.Timers,
			tracer:               opts.Tracer,
			observer:             opts.Observer,
			userAgentString:      opts.UserAgentString,
			acceptOnlyFromServer: opts.AcceptOnlyFromServer,
			limits:               lim,
			shared:               true,
		}),
	}
	return s, nil
}

// Start opens the Stack's sockets and starts its event loop. With a
// Server it waits until the first connection is up or ctx ends, as
// UserAgent.Start does (the Stack goes on trying in the background; Stop
// ends that). A Stack starts once: Start on a started or stopped one
// fails with ErrInvalidState.
func (s *Stack) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.phase != uaNew {
		s.mu.Unlock()
		return fmt.Errorf("%w: stack already started", ErrInvalidState)
	}
	if err := s.core.start(ctx); err != nil {
		s.mu.Unlock()
		return err
	}
	s.phase = uaStarted
	s.mu.Unlock()
	up, err := s.core.connect()
	if err != nil {
		return err
	}
	if up == nil {
		return nil
	}
	if _, err := up.WaitConnected(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	return nil
}

// stopWorkers bounds the accounts Stop ends at once.
const stopWorkers = 32

// Stop stops every UserAgent on the Stack (see UserAgent.Stop: their
// calls end, their subscriptions and registrations are removed, each
// waiting for its answer until ctx ends, every Session's Done closed),
// then closes the connections and sockets and ends the event loop. It
// returns when nothing of the Stack runs any more, and then Done is
// closed. Stop is idempotent and may be called from a callback.
func (s *Stack) Stop(ctx context.Context) error {
	s.mu.Lock()
	started := s.phase == uaStarted
	s.phase = uaStopped
	uas := make([]*UserAgent, 0, len(s.uas))
	for ua := range s.uas {
		uas = append(uas, ua)
	}
	s.mu.Unlock()
	// Stop may be called from an account's callback: the accounts' Stop
	// calls run on workers, so they are told that this goroutine is
	// inside Stop (they do not wait for the lane it runs on).
	for _, ua := range uas {
		defer ua.lanes.enterStop()()
	}
	work := make(chan *UserAgent)
	var wg sync.WaitGroup
	for range min(stopWorkers, len(uas)) {
		wg.Go(func() {
			for ua := range work {
				_ = ua.Stop(ctx)
			}
		})
	}
	for _, ua := range uas {
		work <- ua
	}
	close(work)
	wg.Wait()
	if started {
		s.core.stop()
	}
	s.mu.Lock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.mu.Unlock()
	return nil
}

// Done is closed when Stop has ended the Stack.
func (s *Stack) Done() <-chan struct{} { return s.done }

// NewUserAgent makes an account on the Stack: a UserAgent that is not
// started. Its Start attaches it to the Stack (which must be started),
// its Stop ends only its own calls, registrations and subscriptions.
//
// The Stack's options replace some of opts: Transport, Tracer and
// Limits.MaxServerTransactions belong to the Stack and must be left
// zero; Timers must be zero or the Stack's; AcceptOnlyFromServer may be
// set only when the Stack's is; otherwise NewUserAgent fails with a
// *StackOptionError (wrapping ErrBadOptions). A nil Logger or Observer
// selects the Stack's. ContactName must differ from every other
// account's (Start fails with ErrBadOptions otherwise); by default it is
// a distinct random token.
func (s *Stack) NewUserAgent(opts UserAgentOptions) (*UserAgent, error) {
	switch {
	case !reflect.ValueOf(opts.Transport).IsZero():
		return nil, &StackOptionError{Field: "Transport"}
	case opts.Tracer != nil:
		return nil, &StackOptionError{Field: "Tracer"}
	case opts.Timers != (Timers{}) && opts.Timers != s.opts.Timers:
		return nil, &StackOptionError{Field: "Timers"}
	case opts.Limits.MaxServerTransactions != 0:
		return nil, &StackOptionError{Field: "Limits.MaxServerTransactions"}
	case opts.AcceptOnlyFromServer && !s.opts.AcceptOnlyFromServer:
		return nil, &StackOptionError{Field: "AcceptOnlyFromServer"}
	}
	opts.Timers = s.opts.Timers
	opts.AcceptOnlyFromServer = s.opts.AcceptOnlyFromServer
	if opts.Logger == nil {
		opts.Logger = s.opts.Logger
	}
	if opts.Observer == nil {
		opts.Observer = s.opts.Observer
	}
	ua, err := newUserAgent(opts)
	if err != nil {
		return nil, err
	}
	ua.core = s.core
	ua.lanes.inline = &s.core.inline
	ua.stack = s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == uaStopped {
		return nil, fmt.Errorf("%w: stack stopped", ErrInvalidState)
	}
	if max := limitOr(s.opts.Limits.MaxAccounts, defaultMaxAccounts); max > 0 && len(s.uas) >= max {
		return nil, fmt.Errorf("%w: %d accounts on the stack (StackLimits.MaxAccounts)", ErrTooManyAccounts, max)
	}
	s.uas[ua] = struct{}{}
	return ua, nil
}

// attach starts ua on the Stack: it joins the loop's accounts.
func (s *Stack) attach(ctx context.Context, ua *UserAgent) error {
	s.mu.Lock()
	started := s.phase == uaStarted
	s.mu.Unlock()
	if !started {
		return fmt.Errorf("%w: the stack is not running", ErrInvalidState)
	}
	if !ua.phase.CompareAndSwap(uaNew, uaStarted) {
		return fmt.Errorf("%w: already started", ErrInvalidState)
	}
	ua.init()
	c := s.core
	var err error
	var up *transport.Upstream
	cerr := c.call(ctx, func() {
		if err = c.accounts.add(ua); err != nil {
			return
		}
		up = c.up
		ua.wasUp = c.wasUp
		switch {
		case c.up == nil:
			ua.connected.Store(true)
		case c.upNow:
			ua.connected.Store(true)
			ua.wasUp = true
			if d := ua.opts.Delegate.OnConnect; d != nil {
				ua.cbq.push(d)
			}
		}
	})
	if cerr == nil && err == nil {
		ua.setState(Started)
		if up != nil {
			// As a UserAgent of its own: Start returns once the server
			// connection is up (at once, mostly), or with ctx's end.
			if _, err := up.WaitConnected(ctx); err != nil {
				return fmt.Errorf("%w: %w", ErrTransportClosed, err)
			}
		}
		return nil
	}
	if err == nil {
		err = cerr
	}
	ua.mu.Lock()
	ua.phase.Store(uaStopped)
	close(ua.quit)
	ua.mu.Unlock()
	ua.stopOnce.Do(func() {})
	s.forget(ua)
	return err
}

// forget drops a stopped account.
func (s *Stack) forget(ua *UserAgent) {
	s.mu.Lock()
	delete(s.uas, ua)
	s.mu.Unlock()
}

// accounts are the UserAgents of a core, indexed for dispatching.
// Owned by the loop.
type accounts struct {
	all        []*UserAgent // no order (removal swaps the last in)
	pos        map[*UserAgent]int
	byUser     map[string][]*UserAgent
	byContact  map[string]*UserAgent
	byInstance map[string]*UserAgent
}

func (a *accounts) init() {
	a.pos = map[*UserAgent]int{}
	a.byUser = map[string][]*UserAgent{}
	a.byContact = map[string]*UserAgent{}
	a.byInstance = map[string]*UserAgent{}
}

// add attaches ua; its Contact user must be free.
func (a *accounts) add(ua *UserAgent) error {
	if other := a.byContact[ua.contactName]; other != nil && other != ua {
		return fmt.Errorf("%w: ContactName %q is another account's (%s)", ErrBadOptions, ua.contactName, other.aor)
	}
	if _, ok := a.pos[ua]; ok {
		return nil
	}
	a.pos[ua] = len(a.all)
	a.all = append(a.all, ua)
	a.byUser[ua.aor.User] = append(a.byUser[ua.aor.User], ua)
	a.byContact[ua.contactName] = ua
	if id := instanceKey(ua.opts.InstanceID); id != "" {
		if _, taken := a.byInstance[id]; !taken {
			a.byInstance[id] = ua
		}
	}
	return nil
}

// remove detaches ua.
func (a *accounts) remove(ua *UserAgent) {
	i, ok := a.pos[ua]
	if !ok {
		return
	}
	last := len(a.all) - 1
	a.all[i] = a.all[last]
	a.pos[a.all[i]] = i
	a.all[last] = nil
	a.all = a.all[:last]
	delete(a.pos, ua)
	if l := a.byUser[ua.aor.User]; len(l) > 0 {
		if i := slices.Index(l, ua); i >= 0 {
			l = slices.Delete(l, i, i+1)
		}
		if len(l) == 0 {
			delete(a.byUser, ua.aor.User)
		} else {
			a.byUser[ua.aor.User] = l
		}
	}
	if a.byContact[ua.contactName] == ua {
		delete(a.byContact, ua.contactName)
	}
	if id := instanceKey(ua.opts.InstanceID); id != "" && a.byInstance[id] == ua {
		delete(a.byInstance, id)
	}
}

// list returns the accounts.
func (a *accounts) list() []*UserAgent { return slices.Clone(a.all) }

// instanceKey is an InstanceID as a GRUU's gr parameter carries it.
func instanceKey(id string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">")
}

// route picks the account a request outside a dialog is for (see Stack);
// nil: none.
func (a *accounts) route(u message.URI) *UserAgent {
	if l := a.byUser[u.User]; len(l) > 0 {
		if len(l) == 1 {
			return l[0]
		}
		for _, ua := range l {
			if strings.EqualFold(ua.aor.Host, u.Host) {
				return ua
			}
		}
		return l[0]
	}
	if ua := a.byContact[u.User]; ua != nil {
		return ua
	}
	if gr, ok := u.Params.Get("gr"); ok && gr != "" {
		if ua := a.byInstance[gr]; ua != nil {
			return ua
		}
	}
	return nil
}

// accountFor returns the account a request is for: the only one of a
// UserAgent's own core; on a Stack, the owner of the dialog of an
// in-dialog request (any account when none: claims and 481 are handled
// alike by all), else the one its Request-URI names. Nil: none. Runs on
// the loop.
func (c *core) accountFor(req *message.Request) *UserAgent {
	a := &c.accounts
	if len(a.all) == 0 {
		return nil
	}
	if !c.cfg.shared {
		return a.all[0]
	}
	if req.Method == "ACK" {
		if d := c.dialogs.Get(dialog.RequestID(req)); d != nil {
			if u := c.usages[d.ID]; u != nil {
				return u.account()
			}
		}
		return a.all[0]
	}
	if req.Header.ToTag() != "" {
		if d, _ := c.dialogs.MatchRequest(req); d != nil {
			if u := c.usages[d.ID]; u != nil {
				return u.account()
			}
		}
		return a.all[0]
	}
	return a.route(req.URI)
}
