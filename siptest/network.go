package siptest

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Sentinel errors. Errors returned by the package wrap one of them, so test
// with errors.Is.
var (
	// ErrClosed reports an operation on a closed Endpoint or Network.
	ErrClosed = errors.New("siptest: closed")
	// ErrAddrInUse reports a Listen on an address where an open Endpoint
	// already listens.
	ErrAddrInUse = errors.New("siptest: address already in use")
	// ErrInvalidAddr reports an address that is not a valid IP address and
	// port, or a port of 0 as a destination.
	ErrInvalidAddr = errors.New("siptest: invalid address")
	// ErrInvalidLink reports a Link with a probability outside [0, 1] or a
	// negative duration.
	ErrInvalidLink = errors.New("siptest: invalid link")
	// ErrHasHandler reports Recv or TryRecv on an Endpoint created with
	// ListenFunc, whose datagrams go to its handler.
	ErrHasHandler = errors.New("siptest: endpoint has a handler")
)

// Addr parses s ("192.0.2.1:5060", "[2001:db8::1]:5060") as an address and
// port. It panics if s is not valid, so use it with constant strings.
func Addr(s string) netip.AddrPort {
	return netip.MustParseAddrPort(s)
}

// TestNetAddr returns 192.0.2.host:port, an address of TEST-NET-1
// (RFC 5737), which is reserved for documentation and never routed.
func TestNetAddr(host byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, host}), port)
}

// Link describes one direction of the path between two addresses. The zero
// Link is a perfect one: no loss, no duplication, no delay, up.
type Link struct {
	// Loss is the probability, from 0 to 1, that a datagram is dropped.
	Loss float64
	// Duplicate is the probability, from 0 to 1, that a datagram which is
	// not lost is delivered twice. Each copy has its own jitter.
	Duplicate float64
	// Delay is the fixed one-way delay.
	Delay time.Duration
	// Jitter is the bound of a uniformly distributed extra delay, from 0
	// to Jitter inclusive, drawn for each copy. A Jitter larger than the
	// interval between two datagrams reorders them.
	Jitter time.Duration
	// Down drops every datagram, as a partition or an unplugged cable
	// does. Datagrams already in flight still arrive.
	Down bool
}

// Validate reports whether l is usable: probabilities in [0, 1] and
// durations not negative. The error wraps ErrInvalidLink.
func (l Link) Validate() error {
	switch {
	case !(l.Loss >= 0 && l.Loss <= 1): // also rejects NaN
		return fmt.Errorf("%w: Loss %v is not in [0, 1]", ErrInvalidLink, l.Loss)
	case !(l.Duplicate >= 0 && l.Duplicate <= 1):
		return fmt.Errorf("%w: Duplicate %v is not in [0, 1]", ErrInvalidLink, l.Duplicate)
	case l.Delay < 0:
		return fmt.Errorf("%w: negative Delay %v", ErrInvalidLink, l.Delay)
	case l.Jitter < 0:
		return fmt.Errorf("%w: negative Jitter %v", ErrInvalidLink, l.Jitter)
	}
	return nil
}

// Stats counts what happened to datagrams. One Send counts once in Sent and
// ends in exactly one of Lost, Partitioned, Undeliverable (for a datagram
// to nobody) or in one or two deliveries; a duplicated datagram counts in
// Duplicated and its copies each end in Delivered or Undeliverable. So,
// once nothing is in flight:
//
//	Sent + Duplicated == Delivered + Lost + Partitioned + Undeliverable
type Stats struct {
	// Sent counts datagrams given to Send or Inject (not refused with an
	// error).
	Sent uint64
	// Delivered counts copies handed to an Endpoint's queue or handler.
	Delivered uint64
	// Lost counts datagrams dropped by the Link's Loss.
	Lost uint64
	// Partitioned counts datagrams dropped because the Link was Down.
	Partitioned uint64
	// Duplicated counts datagrams sent twice by the Link's Duplicate.
	Duplicated uint64
	// Undeliverable counts copies sent to an address where no Endpoint
	// listened, or whose Endpoint closed before they arrived.
	Undeliverable uint64
	// InFlight is the number of copies scheduled and not yet delivered
	// when the Stats were taken.
	InFlight int
}

// Packet is one datagram as an Endpoint receives it.
type Packet struct {
	// ID identifies the Send (or Inject) that produced the datagram; both
	// copies of a duplicated datagram have the same ID. IDs count from 1
	// in the order of sending.
	ID uint64
	// Duplicate is true for the second copy of a duplicated datagram.
	Duplicate bool
	// From is the sender's address, To the receiver's.
	From, To netip.AddrPort
	// Data is the datagram, a copy owned by the receiver.
	Data []byte
	// SentAt is when Send was called, DeliveredAt when the datagram was
	// scheduled to arrive (SentAt plus the Link's delay and jitter). In a
	// synctest bubble both are virtual times.
	SentAt, DeliveredAt time.Time
}

// dirKey names one direction of a path.
type dirKey struct{ from, to netip.AddrPort }

// direction is the state of one direction: its random stream, its
// counters, and its Link when it overrides the default.
type direction struct {
	rng   *rand.Rand
	stats Stats
	link  *Link
}

// delivery is one copy of a datagram scheduled for an Endpoint.
type delivery struct {
	at  time.Time
	seq uint64 // scheduling order, breaks ties between equal times
	dst *Endpoint
	pkt Packet
}

type deliveryQueue []*delivery

func (q deliveryQueue) Len() int { return len(q) }
func (q deliveryQueue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q deliveryQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveryQueue) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *deliveryQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return d
}

// Network is an in-memory datagram network. Create it with NewNetwork; its
// methods are safe for concurrent use. See the package documentation for
// how to use it on virtual time.
type Network struct {
	seed  uint64
	start time.Time

	mu       sync.Mutex
	closed   bool
	defLink  Link
	dirs     map[dirKey]*direction
	eps      map[netip.AddrPort]*Endpoint
	names    map[netip.AddrPort]string
	nextHost byte
	nextPort map[netip.Addr]uint16

	queue    deliveryQueue
	timer    *time.Timer
	armed    bool
	armedAt  time.Time
	schedSeq uint64
	lastID   uint64

	stats   Stats
	tracing bool
	trace   []Event
}

// NewNetwork returns an empty Network whose random decisions all derive
// from seed. Its default Link is perfect and its trace is on.
func NewNetwork(seed uint64) *Network {
	return &Network{
		seed:     seed,
		start:    time.Now(),
		dirs:     make(map[dirKey]*direction),
		eps:      make(map[netip.AddrPort]*Endpoint),
		names:    make(map[netip.AddrPort]string),
		nextPort: make(map[netip.Addr]uint16),
		tracing:  true,
	}
}

// Start returns the time at which the Network was created, the origin of
// the times a Ladder shows.
func (n *Network) Start() time.Time { return n.start }

// normalize unmaps IPv4-mapped IPv6 addresses, so that ::ffff:192.0.2.1 and
// 192.0.2.1 are the same endpoint.
func normalize(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Listen opens an Endpoint at addr whose received datagrams wait in a queue
// for Recv or TryRecv. name labels the Endpoint in ladder diagrams; when
// empty, the address is used.
//
// A zero addr (netip.AddrPort{}) picks the next free address of
// 192.0.2.0/24 with port 5060, in order from 192.0.2.1; a valid IP address
// with port 0 picks the next free port from 49152 on that address. Both
// choices are deterministic.
func (n *Network) Listen(name string, addr netip.AddrPort) (*Endpoint, error) {
	return n.listen(name, addr, nil)
}

// ListenFunc is like Listen, but the Endpoint hands every datagram it
// receives to handler, one at a time and in order of arrival, on a
// goroutine that exists only while datagrams wait. The handler is never
// called while the Network holds a lock, so it may Send or Close.
func (n *Network) ListenFunc(name string, addr netip.AddrPort, handler func(Packet)) (*Endpoint, error) {
	if handler == nil {
		return nil, errors.New("siptest: ListenFunc with a nil handler")
	}
	return n.listen(name, addr, handler)
}

func (n *Network) listen(name string, addr netip.AddrPort, handler func(Packet)) (*Endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("siptest: listen on %v: %w", addr, ErrClosed)
	}
	switch {
	case addr == netip.AddrPort{}:
		a, err := n.pickHostLocked()
		if err != nil {
			return nil, err
		}
		addr = a
	case !addr.Addr().IsValid():
		return nil, fmt.Errorf("siptest: listen on %v: %w", addr, ErrInvalidAddr)
	case addr.Port() == 0:
		a, err := n.pickPortLocked(addr.Addr().Unmap())
		if err != nil {
			return nil, err
		}
		addr = a
	}
	addr = normalize(addr)
	if _, ok := n.eps[addr]; ok {
		return nil, fmt.Errorf("siptest: listen on %v: %w", addr, ErrAddrInUse)
	}
	if name == "" {
		name = addr.String()
	}
	ep := &Endpoint{
		n:       n,
		addr:    addr,
		name:    name,
		handler: handler,
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	n.eps[addr] = ep
	n.names[addr] = name
	return ep, nil
}

func (n *Network) pickHostLocked() (netip.AddrPort, error) {
	for n.nextHost < 254 {
		n.nextHost++
		a := TestNetAddr(n.nextHost, 5060)
		if _, ok := n.eps[a]; !ok {
			return a, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("siptest: no free address left in 192.0.2.0/24: %w", ErrAddrInUse)
}

func (n *Network) pickPortLocked(ip netip.Addr) (netip.AddrPort, error) {
	const first = 49152
	for range 65536 - first {
		p := n.nextPort[ip]
		if p < first {
			p = first
		}
		next := p + 1
		if next == 0 {
			next = first
		}
		n.nextPort[ip] = next
		a := netip.AddrPortFrom(ip, p)
		if _, ok := n.eps[a]; !ok {
			return a, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("siptest: no free port left on %v: %w", ip, ErrAddrInUse)
}

// SetDefaultLink sets the Link of every direction that has no Link of its
// own (see SetLink). It applies to datagrams sent from now on.
func (n *Network) SetDefaultLink(l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.defLink = l
	n.mu.Unlock()
	return nil
}

// SetLink sets the Link for datagrams from from to to, overriding the
// default Link. It applies to datagrams sent from now on; those in flight
// keep the timing they were given.
func (n *Network) SetLink(from, to netip.AddrPort, l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.directionLocked(normalize(from), normalize(to)).link = &l
	n.mu.Unlock()
	return nil
}

// SetLinks sets the same Link in both directions between a and b.
func (n *Network) SetLinks(a, b netip.AddrPort, l Link) error {
	if err := n.SetLink(a, b, l); err != nil {
		return err
	}
	return n.SetLink(b, a, l)
}

// ClearLink removes the Link set for the direction from from to to, which
// then follows the default Link again.
func (n *Network) ClearLink(from, to netip.AddrPort) {
	n.mu.Lock()
	if d, ok := n.dirs[dirKey{normalize(from), normalize(to)}]; ok {
		d.link = nil
	}
	n.mu.Unlock()
}

// Link returns the Link in force from from to to.
func (n *Network) Link(from, to netip.AddrPort) Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d, ok := n.dirs[dirKey{normalize(from), normalize(to)}]; ok && d.link != nil {
		return *d.link
	}
	return n.defLink
}

// SetDown takes both directions between a and b down (a partition) or up
// again, keeping the rest of their Links. A direction without a Link of
// its own gets a copy of the default Link with Down changed.
func (n *Network) SetDown(a, b netip.AddrPort, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, b = normalize(a), normalize(b)
	for _, k := range []dirKey{{a, b}, {b, a}} {
		d := n.directionLocked(k.from, k.to)
		l := n.defLink
		if d.link != nil {
			l = *d.link
		}
		l.Down = down
		d.link = &l
	}
}

// directionLocked returns the state of a direction, creating it with its
// own random stream, seeded from the Network's seed and the two addresses.
func (n *Network) directionLocked(from, to netip.AddrPort) *direction {
	k := dirKey{from, to}
	d, ok := n.dirs[k]
	if !ok {
		d = &direction{rng: rand.New(rand.NewPCG(n.seed, directionSeed(k)))}
		n.dirs[k] = d
	}
	return d
}

func directionSeed(k dirKey) uint64 {
	h := fnv.New64a()
	for _, a := range []netip.AddrPort{k.from, k.to} {
		ip := a.Addr().As16()
		_, _ = h.Write(ip[:])
		_, _ = h.Write(binary.BigEndian.AppendUint16(nil, a.Port()))
	}
	return h.Sum64()
}

// Inject sends data from from to to as if an Endpoint at from had sent it,
// through the same Links. It serves to replay recorded traffic or to forge
// datagrams from addresses where nobody listens.
func (n *Network) Inject(from, to netip.AddrPort, data []byte) error {
	if !from.Addr().IsValid() {
		return fmt.Errorf("siptest: inject from %v: %w", from, ErrInvalidAddr)
	}
	return n.send(nil, normalize(from), normalize(to), data)
}

func (n *Network) send(src *Endpoint, from, to netip.AddrPort, data []byte) error {
	if !to.Addr().IsValid() || to.Port() == 0 {
		return fmt.Errorf("siptest: send from %v to %v: %w", from, to, ErrInvalidAddr)
	}
	buf := make([]byte, len(data))
	copy(buf, data)
	now := time.Now()

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || (src != nil && src.closed) {
		return fmt.Errorf("siptest: send from %v to %v: %w", from, to, ErrClosed)
	}
	n.lastID++
	id := n.lastID
	d := n.directionLocked(from, to)
	link := n.defLink
	if d.link != nil {
		link = *d.link
	}
	ev := Event{Kind: EventSent, ID: id, At: now, From: from, To: to, Data: buf}
	n.stats.Sent++
	d.stats.Sent++
	n.recordLocked(ev)

	drop := func(r DropReason) {
		ev.Kind, ev.Reason = EventDropped, r
		n.recordLocked(ev)
	}
	switch {
	case link.Down:
		n.stats.Partitioned++
		d.stats.Partitioned++
		drop(DropDown)
		return nil
	case link.Loss > 0 && d.rng.Float64() < link.Loss:
		n.stats.Lost++
		d.stats.Lost++
		drop(DropLoss)
		return nil
	}
	dst := n.eps[to]
	if dst == nil {
		n.stats.Undeliverable++
		d.stats.Undeliverable++
		drop(DropNoEndpoint)
		return nil
	}
	copies := 1
	if link.Duplicate > 0 && d.rng.Float64() < link.Duplicate {
		copies = 2
		n.stats.Duplicated++
		d.stats.Duplicated++
	}
	for c := range copies {
		delay := link.Delay
		if link.Jitter > 0 {
			delay += time.Duration(d.rng.Int64N(int64(link.Jitter) + 1))
		}
		n.schedSeq++
		heap.Push(&n.queue, &delivery{
			at:  now.Add(delay),
			seq: n.schedSeq,
			dst: dst,
			pkt: Packet{ID: id, Duplicate: c > 0, From: from, To: to, Data: buf, SentAt: now},
		})
	}
	n.armLocked()
	return nil
}

// armLocked makes the timer fire at the earliest scheduled delivery.
func (n *Network) armLocked() {
	if len(n.queue) == 0 {
		if n.armed {
			n.timer.Stop()
			n.armed = false
		}
		return
	}
	next := n.queue[0].at
	if n.armed && !next.Before(n.armedAt) {
		return
	}
	n.armed, n.armedAt = true, next
	if n.timer == nil {
		n.timer = time.AfterFunc(time.Until(next), n.fire)
	} else {
		n.timer.Reset(time.Until(next))
	}
}

// fire delivers every copy that is due, in order of time and then of
// scheduling, and wakes receivers once the lock is released.
func (n *Network) fire() {
	var wake, dispatch []*Endpoint
	n.mu.Lock()
	n.armed = false
	now := time.Now()
	for len(n.queue) > 0 && !n.queue[0].at.After(now) {
		dl := heap.Pop(&n.queue).(*delivery)
		ep := dl.dst
		if ep.closed { // Close removes its deliveries; defensive only
			continue
		}
		p := dl.pkt
		p.DeliveredAt = dl.at
		p.Data = append([]byte(nil), p.Data...) // each copy is the receiver's own
		ep.inbox = append(ep.inbox, p)
		n.stats.Delivered++
		n.directionLocked(p.From, p.To).stats.Delivered++
		n.recordLocked(Event{Kind: EventDelivered, ID: p.ID, Duplicate: p.Duplicate, At: dl.at, From: p.From, To: p.To, Data: dl.pkt.Data})
		switch {
		case ep.handler == nil:
			if !slices.Contains(wake, ep) {
				wake = append(wake, ep)
			}
		case !ep.dispatching:
			ep.dispatching = true
			dispatch = append(dispatch, ep)
		}
	}
	n.armLocked()
	n.mu.Unlock()
	for _, ep := range wake {
		ep.signal()
	}
	for _, ep := range dispatch {
		go ep.dispatch()
	}
}

func (n *Network) recordLocked(e Event) {
	if n.tracing {
		n.trace = append(n.trace, e)
	}
}

// Stats returns the Network's counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.InFlight = len(n.queue)
	return s
}

// LinkStats returns the counters of the direction from from to to.
func (n *Network) LinkStats(from, to netip.AddrPort) Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	from, to = normalize(from), normalize(to)
	var s Stats
	if d, ok := n.dirs[dirKey{from, to}]; ok {
		s = d.stats
	}
	for _, dl := range n.queue {
		if dl.pkt.From == from && dl.pkt.To == to {
			s.InFlight++
		}
	}
	return s
}

// SetTracing turns the recording of Events on (the default) or off.
func (n *Network) SetTracing(on bool) {
	n.mu.Lock()
	n.tracing = on
	n.mu.Unlock()
}

// Trace returns a copy of the Events recorded so far, in the order they
// were recorded. The Data of the Events is shared and must not be modified.
//
// Events of one virtual instant that come from different goroutines (a
// send and a zero-delay delivery, or two senders) may be recorded in either
// order from one run to the next. Ladder and Flow list datagrams in the
// order they were sent and are the stable form to compare when a single
// goroutine sends at a time; with concurrent senders at the same instant,
// compare per direction or as a set.
func (n *Network) Trace() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.trace)
}

// ClearTrace forgets the Events recorded so far.
func (n *Network) ClearTrace() {
	n.mu.Lock()
	n.trace = nil
	n.mu.Unlock()
}

// Names returns the label of every address where an Endpoint has listened,
// for LadderOptions.
func (n *Network) Names() map[netip.AddrPort]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	names := make(map[netip.AddrPort]string, len(n.names))
	for a, s := range n.names {
		names[a] = s
	}
	return names
}

// Ladder renders the trace as a ladder diagram (see the package function
// Ladder), with times from the Network's creation and Endpoint names as
// labels.
func (n *Network) Ladder() string {
	return Ladder(n.Trace(), LadderOptions{Start: n.start, Names: n.Names()})
}

// Flow renders the trace in the compact form of the package function Flow,
// with Endpoint names as labels.
func (n *Network) Flow() []string {
	return Flow(n.Trace(), LadderOptions{Names: n.Names()})
}

// Close closes every Endpoint, dropping what is in flight, and refuses
// further Listen, Send and Inject calls. Stats, the trace and ladders stay
// available. Close is idempotent and always returns nil.
func (n *Network) Close() error {
	n.mu.Lock()
	n.closed = true
	eps := make([]*Endpoint, 0, len(n.eps))
	for _, ep := range n.eps {
		eps = append(eps, ep)
	}
	n.mu.Unlock()
	slices.SortFunc(eps, func(a, b *Endpoint) int { return a.addr.Compare(b.addr) })
	for _, ep := range eps {
		_ = ep.Close()
	}
	return nil
}

// Endpoint is one address of a Network, a datagram socket. Its methods are
// safe for concurrent use.
type Endpoint struct {
	n       *Network
	addr    netip.AddrPort
	name    string
	handler func(Packet)
	ready   chan struct{} // capacity 1: something was queued
	done    chan struct{} // closed by Close

	// guarded by n.mu
	closed      bool
	inbox       []Packet
	dispatching bool
}

// Addr returns the Endpoint's address.
func (ep *Endpoint) Addr() netip.AddrPort { return ep.addr }

// Name returns the Endpoint's label in ladder diagrams.
func (ep *Endpoint) Name() string { return ep.name }

// Done returns a channel closed when the Endpoint is closed.
func (ep *Endpoint) Done() <-chan struct{} { return ep.done }

// Send sends a copy of data to the address to, with datagram semantics: it
// returns before delivery, and a datagram that is lost, sent to an address
// where nobody listens or over a Link that is down is dropped silently (and
// counted). It fails only on a closed Endpoint (ErrClosed) or an invalid
// destination (ErrInvalidAddr).
func (ep *Endpoint) Send(to netip.AddrPort, data []byte) error {
	return ep.n.send(ep, ep.addr, normalize(to), data)
}

// Recv returns the next datagram received, waiting for one until ctx is
// done (returning ctx.Err()) or the Endpoint is closed (ErrClosed).
func (ep *Endpoint) Recv(ctx context.Context) (Packet, error) {
	for {
		p, ok, err := ep.tryRecv()
		if ok || err != nil {
			return p, err
		}
		select {
		case <-ep.ready:
		case <-ep.done:
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		}
	}
}

// TryRecv returns the next datagram received and true, if one is waiting;
// otherwise, or on a closed Endpoint or one with a handler, it returns
// false. In a synctest bubble, call synctest.Wait first to let every
// delivery that is due happen.
func (ep *Endpoint) TryRecv() (Packet, bool) {
	p, ok, _ := ep.tryRecv()
	return p, ok
}

func (ep *Endpoint) tryRecv() (Packet, bool, error) {
	if ep.handler != nil {
		return Packet{}, false, fmt.Errorf("siptest: receive on %v: %w", ep.addr, ErrHasHandler)
	}
	n := ep.n
	n.mu.Lock()
	if len(ep.inbox) > 0 {
		p := ep.popLocked()
		more := len(ep.inbox) > 0
		n.mu.Unlock()
		if more { // another Recv may be waiting for the rest
			ep.signal()
		}
		return p, true, nil
	}
	closed := ep.closed
	n.mu.Unlock()
	if closed {
		return Packet{}, false, fmt.Errorf("siptest: receive on %v: %w", ep.addr, ErrClosed)
	}
	return Packet{}, false, nil
}

// Queued returns the number of datagrams received and not yet taken by
// Recv, TryRecv or the handler.
func (ep *Endpoint) Queued() int {
	ep.n.mu.Lock()
	defer ep.n.mu.Unlock()
	return len(ep.inbox)
}

func (ep *Endpoint) popLocked() Packet {
	p := ep.inbox[0]
	ep.inbox[0] = Packet{}
	ep.inbox = ep.inbox[1:]
	if len(ep.inbox) == 0 {
		ep.inbox = nil
	}
	return p
}

func (ep *Endpoint) signal() {
	select {
	case ep.ready <- struct{}{}:
	default:
	}
}

// dispatch hands queued datagrams to the handler until none is left or the
// Endpoint is closed, then returns.
func (ep *Endpoint) dispatch() {
	n := ep.n
	for {
		n.mu.Lock()
		if ep.closed || len(ep.inbox) == 0 {
			ep.dispatching = false
			n.mu.Unlock()
			return
		}
		p := ep.popLocked()
		n.mu.Unlock()
		ep.handler(p)
	}
}

// Close closes the Endpoint: datagrams in flight to it are dropped (and
// counted as Undeliverable), those queued are discarded, a handler is not
// called again once its current call returns, and blocked Recv calls
// return ErrClosed. Its address becomes free for Listen. Close is
// idempotent and always returns nil.
func (ep *Endpoint) Close() error {
	n := ep.n
	n.mu.Lock()
	if ep.closed {
		n.mu.Unlock()
		return nil
	}
	ep.closed = true
	if n.eps[ep.addr] == ep {
		delete(n.eps, ep.addr)
	}
	var dropped []*delivery
	kept := n.queue[:0]
	for _, dl := range n.queue {
		if dl.dst == ep {
			dropped = append(dropped, dl)
		} else {
			kept = append(kept, dl)
		}
	}
	clear(n.queue[len(kept):])
	n.queue = kept
	heap.Init(&n.queue)
	slices.SortFunc(dropped, func(a, b *delivery) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.seq, b.seq))
	})
	for _, dl := range dropped {
		n.stats.Undeliverable++
		n.directionLocked(dl.pkt.From, dl.pkt.To).stats.Undeliverable++
		n.recordLocked(Event{Kind: EventDropped, ID: dl.pkt.ID, Duplicate: dl.pkt.Duplicate, At: time.Now(),
			From: dl.pkt.From, To: dl.pkt.To, Data: dl.pkt.Data, Reason: DropClosed})
	}
	ep.inbox = nil
	n.armLocked()
	n.mu.Unlock()
	close(ep.done)
	return nil
}
