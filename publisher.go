package sip

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sipua/sip/message"
)

// PublisherState is the state of a Publisher, as SIP.js's.
type PublisherState int

// Publisher states.
const (
	PublisherInitial PublisherState = iota
	Published
	Unpublished
	PublisherTerminated
)

// String returns the state's name, e.g. "Published".
func (s PublisherState) String() string {
	switch s {
	case PublisherInitial:
		return "Initial"
	case Published:
		return "Published"
	case Unpublished:
		return "Unpublished"
	case PublisherTerminated:
		return "Terminated"
	}
	return "Unknown"
}

// PublisherOptions configures a Publisher. The zero value works.
type PublisherOptions struct {
	// Expires is the publication lifetime asked for, in seconds.
	// Default 3600.
	Expires uint32
	// RefreshFraction is the part of the granted lifetime after which the
	// publication is refreshed. Default 0.9; at least 5 s (or half the
	// lifetime, if shorter) are always left, as for a Registerer.
	RefreshFraction float64
	// ExtraHeaders are added to every PUBLISH, as "Name: value".
	ExtraHeaders []string
}

// Publisher publishes event state (RFC 3903), as SIP.js's Publisher: the
// first Publish sends the state in an initial PUBLISH and keeps the
// entity tag (SIP-ETag) of the 2xx; the publication is then refreshed
// before it expires (SIP-If-Match, no body), a later Publish modifies it
// (SIP-If-Match with the new body), and Unpublish removes it (Expires: 0).
// When the server no longer knows the entity tag (412 Conditional Request
// Failed), the Publisher starts over with an initial PUBLISH of the
// state. PUBLISHes are sent one at a time, in the order asked.
type Publisher struct {
	ua     *UserAgent
	target message.URI
	event  message.ValueParams
	opts   PublisherOptions

	st stateBox[PublisherState]

	// Owned by the event loop.
	callID      string
	fromTag     string
	cseq        uint32
	expires     uint32
	etag        string
	contentType string // of the state published last
	body        []byte
	refresh     *timerEntry
	busy        bool
	queue       []func()
	disposed    bool
}

// NewPublisher returns a Publisher of event (an event package such as
// "presence") for target, a SIP URI (usually the address of record
// itself). It sends nothing until Publish.
func NewPublisher(ua *UserAgent, target, event string, opts PublisherOptions) (*Publisher, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	ev, err := parseEvent(event)
	if err != nil {
		return nil, err
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return nil, err
	}
	if opts.Expires == 0 {
		opts.Expires = 3600
	}
	if opts.RefreshFraction <= 0 || opts.RefreshFraction >= 1 {
		opts.RefreshFraction = 0.9
	}
	return &Publisher{
		ua: ua, target: u, event: ev, opts: opts,
		callID:  message.NewCallID(),
		fromTag: message.NewTag(),
		cseq:    uint32(time.Now().UnixNano()%100000) + 1,
		expires: opts.Expires,
	}, nil
}

// State returns the current state.
func (p *Publisher) State() PublisherState { return p.st.get() }

// OnStateChange adds a state listener and returns a function removing it.
// Listeners run on the UserAgent's callback goroutine, in order.
func (p *Publisher) OnStateChange(f func(PublisherState)) (remove func()) { return p.st.listen(f) }

func (p *Publisher) setState(s PublisherState) { p.st.set(s, PublisherTerminated, &p.ua.cbq) }

// Publish publishes body, of contentType (e.g. "application/pidf+xml"),
// and waits for the final answer: nil for a 2xx, a *ResponseError for a
// rejection, an error wrapping ErrTimeout, ErrAuthFailed or
// ErrTransportClosed otherwise. The first Publish (or the first after a
// failure or Unpublish) sends an initial PUBLISH; later ones modify the
// publication. A 423 Interval Too Brief is retried once with the server's
// Min-Expires. A rejected initial PUBLISH, or a failed refresh, leaves
// the Publisher Unpublished; a rejected modification leaves the earlier
// state published.
func (p *Publisher) Publish(ctx context.Context, contentType string, body []byte) error {
	if len(body) == 0 || contentType == "" {
		return fmt.Errorf("%w: PUBLISH needs a body and its content type", ErrBadOptions)
	}
	return p.do(ctx, func(done func(error)) {
		p.publish(contentType, body, false, done)
	})
}

// Unpublish removes the publication (PUBLISH with Expires: 0 and
// SIP-If-Match) and stops refreshing it; the Publisher is then
// Unpublished whatever the answer (a 412 counts as success: the server had
// lost it). It fails with ErrInvalidState when nothing is published.
func (p *Publisher) Unpublish(ctx context.Context) error {
	return p.do(ctx, p.unpublish)
}

// Dispose unpublishes if published and ends the Publisher for good
// (PublisherTerminated).
func (p *Publisher) Dispose(ctx context.Context) error {
	var err error
	if p.State() == Published {
		err = p.Unpublish(ctx)
	}
	if cerr := p.ua.call(ctx, func() {
		p.disposed = true
		p.ua.timers.stop(p.refresh)
	}); cerr != nil && err == nil {
		err = cerr
	}
	p.setState(PublisherTerminated)
	return err
}

// do runs op on the loop after the operations before it and waits for
// its outcome.
func (p *Publisher) do(ctx context.Context, op func(done func(error))) error {
	errc := make(chan error, 1)
	if err := p.ua.call(ctx, func() {
		if p.disposed || p.State() == PublisherTerminated {
			errc <- fmt.Errorf("%w: publisher terminated", ErrInvalidState)
			return
		}
		p.enqueue(func() { op(func(err error) { errc <- err }) })
	}); err != nil {
		return err
	}
	return p.ua.await(ctx, errc)
}

// enqueue runs f now, or after the PUBLISH in flight.
func (p *Publisher) enqueue(f func()) {
	p.queue = append(p.queue, f)
	p.next()
}

func (p *Publisher) next() {
	if p.busy || len(p.queue) == 0 {
		return
	}
	f := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	p.busy = true
	f()
}

// finished ends the operation in flight and starts the next one.
func (p *Publisher) finished(done func(error), err error) {
	p.busy = false
	done(err)
	p.next()
}

// build returns a PUBLISH: with ifMatch (refresh, modify, remove) when not
// "", with the body when not nil.
func (p *Publisher) build(expires uint32, ifMatch, contentType string, body []byte) *message.Request {
	from := message.Address{DisplayName: p.ua.opts.DisplayName, URI: p.ua.aor, Params: message.Params("tag=" + p.fromTag)}
	to := message.Address{URI: p.target}
	to.URI.Params, to.URI.Headers = "", ""
	req := message.NewRequest("PUBLISH", p.target, from, to)
	req.Header.Set("Call-ID", p.callID)
	p.cseq++
	req.Header.Set("CSeq", message.CSeq{Seq: p.cseq, Method: "PUBLISH"}.String())
	h := &req.Header
	h.Add("Event", p.event.String())
	h.Add("Expires", strconv.FormatUint(uint64(expires), 10))
	if ifMatch != "" {
		h.Add("SIP-If-Match", ifMatch)
	}
	addExtraHeaders(h, p.opts.ExtraHeaders)
	if body != nil {
		h.Add("Content-Type", contentType)
		req.Body = body
	}
	return req
}

// send sends req and hands its final response (or error) to onFinal, on
// the loop.
func (p *Publisher) send(req *message.Request, onFinal func(*message.Response, error)) {
	o := &outgoing{req: req}
	o.rebuild = nextCSeq(&p.cseq)
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		onFinal(resp, nil)
	}
	o.onError = func(err error) { onFinal(nil, err) }
	if err := p.ua.send(o); err != nil {
		onFinal(nil, err)
	}
}

// publish sends an initial PUBLISH (no entity tag yet) or a modifying one
// with body, or a refresh when body is nil.
func (p *Publisher) publish(contentType string, body []byte, retried423 bool, done func(error)) {
	refresh := body == nil
	if refresh && p.etag == "" {
		p.finished(done, fmt.Errorf("%w: nothing published", ErrInvalidState))
		return
	}
	modify := !refresh && p.etag != ""
	asked := p.expires
	req := p.build(asked, p.etag, contentType, body)
	p.send(req, func(resp *message.Response, err error) {
		switch {
		case err != nil:
			p.onFailure(modify, done, err)
		case resp.StatusCode < 300:
			if tag := resp.Header.Get("SIP-ETag"); tag != "" {
				p.etag = tag
			}
			if !refresh {
				p.contentType, p.body = contentType, body
			}
			granted := asked
			if e, ok, err := resp.Header.Expires(); ok && err == nil {
				granted = e
			}
			if p.etag == "" || granted == 0 {
				// No entity tag to refresh with, or nothing kept.
				p.ua.timers.stop(p.refresh)
				p.setState(Unpublished)
			} else {
				p.scheduleRefresh(time.Duration(granted) * time.Second)
				p.setState(Published)
			}
			p.finished(done, nil)
		case resp.StatusCode == 412 && p.etag != "":
			// The server lost the publication: start over with the
			// state, the new one or the one published last.
			p.etag = ""
			if refresh {
				contentType, body = p.contentType, p.body
			}
			if body == nil {
				p.onFailure(false, done, responseError(resp))
				return
			}
			p.publish(contentType, body, retried423, done)
		case resp.StatusCode == 423 && !retried423:
			if min, ok, _ := resp.Header.MinExpires(); ok && min > p.expires {
				p.expires = min
				p.publish(contentType, body, true, done)
				return
			}
			p.onFailure(modify, done, responseError(resp))
		default:
			p.onFailure(modify, done, responseError(resp))
		}
	})
}

// onFailure ends a failed PUBLISH: a failed modification leaves the
// publication as it was; anything else loses it.
func (p *Publisher) onFailure(modify bool, done func(error), err error) {
	if !modify {
		p.etag = ""
		p.ua.timers.stop(p.refresh)
		p.setState(Unpublished)
	}
	p.finished(done, err)
}

func (p *Publisher) scheduleRefresh(lifetime time.Duration) {
	p.ua.timers.stop(p.refresh)
	p.refresh = p.ua.after(refreshDelay(lifetime, p.opts.RefreshFraction), func() {
		p.enqueue(func() {
			if p.etag == "" || p.disposed {
				p.finished(func(error) {}, nil)
				return
			}
			p.publish("", nil, false, func(error) {})
		})
	})
}

func (p *Publisher) unpublish(done func(error)) {
	if p.etag == "" {
		p.finished(done, fmt.Errorf("%w: nothing published", ErrInvalidState))
		return
	}
	p.ua.timers.stop(p.refresh)
	req := p.build(0, p.etag, "", nil)
	p.send(req, func(resp *message.Response, err error) {
		switch {
		case err != nil:
		case resp.StatusCode < 300 || resp.StatusCode == 412:
			// 412: the server had lost it already.
		default:
			err = responseError(resp)
		}
		p.etag = ""
		p.setState(Unpublished)
		p.finished(done, err)
	})
}
