package sip

import (
	"bytes"
	"context"
	"fmt"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// EarlyMediaPolicy chooses whose early media plays when a forked INVITE
// gets early answers (183 with SDP) from several early dialogs.
type EarlyMediaPolicy int

// Early media policies.
const (
	// EarlyMediaFirst keeps the media of the first early dialog that
	// sent an answer (the default).
	EarlyMediaFirst EarlyMediaPolicy = iota
	// EarlyMediaLatest switches to the media of the early dialog that
	// sent an answer last. It needs a media handler that implements
	// media.AnswerReplacer (media/rtp does); with one that does not, the
	// first answer stays.
	EarlyMediaLatest
)

func (p EarlyMediaPolicy) String() string {
	if p == EarlyMediaLatest {
		return "latest"
	}
	return "first"
}

// EarlyDialog is one early dialog of an outgoing call: the provisional
// responses that share a To tag, one per branch of a forked INVITE (RFC
// 3261 §12.1, §13.2.2.4).
type EarlyDialog struct {
	// RemoteTag is the To tag of its responses.
	RemoteTag string
	// Contact is the Contact of its last provisional response (zero when
	// it had none).
	Contact message.URI
	// StatusCode and Reason are those of its last provisional response.
	StatusCode int
	Reason     string
	// HasAnswer is true once it sent a session description (early media).
	HasAnswer bool
	// MediaActive is true for the early dialog whose session description
	// the media handler is using.
	MediaActive bool
}

// forkState is an Inviter's view of its early dialogs. Owned by the loop.
type forkState struct {
	early    []*EarlyDialog
	mediaTag string // the early dialog whose answer is applied
}

func (f *forkState) lookup(tag string) *EarlyDialog {
	for _, e := range f.early {
		if e.RemoteTag == tag {
			return e
		}
	}
	return nil
}

// EarlyDialogs returns the call's early dialogs in the order they
// appeared (several when the INVITE forked). It is empty before the first
// provisional response with a To tag, and once the call is answered it
// still lists them as they were.
func (i *Inviter) EarlyDialogs() []EarlyDialog {
	var out []EarlyDialog
	_ = i.ua.call(context.Background(), func() {
		for _, e := range i.forks.early {
			out = append(out, *e)
		}
	})
	return out
}

// onProvisional records the early dialog of a provisional response and
// applies its early media per the options. Runs on the loop.
func (i *Inviter) onProvisional(resp *message.Response, opts InviteOptions) {
	tag := resp.Header.ToTag()
	if tag == "" || resp.StatusCode == 100 {
		return
	}
	e := i.forks.lookup(tag)
	if e == nil {
		e = &EarlyDialog{RemoteTag: tag}
		i.forks.early = append(i.forks.early, e)
	}
	e.StatusCode, e.Reason = resp.StatusCode, resp.Reason
	if cs, err := resp.Header.Contacts(); err == nil && len(cs) == 1 && !cs[0].Wildcard {
		e.Contact = cs[0].URI
	}
	if len(resp.Body) == 0 {
		return
	}
	e.HasAnswer = true
	if !i.opts.EarlyMedia || i.handler == nil || i.opts.Offerless {
		return
	}
	d := media.Description{ContentType: resp.Header.MediaType(), Body: resp.Body}
	h, mo := i.handler, i.opts.Media
	switch {
	case i.forks.mediaTag == "":
		i.setEarlyMedia(e, resp.Body)
		i.applyRemote(d, mo, "early answer")
	case i.forks.mediaTag != tag && i.opts.EarlyMediaPolicy == EarlyMediaLatest:
		r, ok := h.(media.AnswerReplacer)
		if !ok {
			return
		}
		i.setEarlyMedia(e, resp.Body)
		log := i.ua.log
		i.cbq.push(func() {
			ctx, cancel := i.mediaContext()
			defer cancel()
			if err := r.ReplaceAnswer(ctx, d, mo); err != nil {
				log.Debug("sip: early media of another fork refused", "err", err)
			}
		})
	default:
		return
	}
	if f := opts.OnEarlyMedia; f != nil {
		ed := *e
		i.cbq.push(func() { f(ed) })
	}
}

// setEarlyMedia marks e as the early dialog whose answer plays.
func (i *Inviter) setEarlyMedia(e *EarlyDialog, body []byte) {
	for _, o := range i.forks.early {
		o.MediaActive = false
	}
	e.MediaActive = true
	i.forks.mediaTag = e.RemoteTag
	i.earlyApplied = body
}

// applyAnswer applies the 2xx's session description after Invite: unless
// it is the early answer already in force, it replaces it (another fork
// answered, or the early dialog answered differently in its 2xx).
func (i *Inviter) applyAnswer(ctx context.Context, resp *message.Response) error {
	if i.handler == nil || len(resp.Body) == 0 || i.opts.Offerless {
		return nil
	}
	var early []byte
	var tag string
	_ = i.ua.call(context.Background(), func() { early, tag = i.earlyApplied, i.forks.mediaTag })
	d := media.Description{ContentType: resp.Header.MediaType(), Body: resp.Body}
	if early == nil {
		return i.handler.SetDescription(ctx, d, i.opts.Media)
	}
	if tag == resp.Header.ToTag() && bytes.Equal(early, resp.Body) {
		return nil
	}
	r, ok := i.handler.(media.AnswerReplacer)
	if !ok {
		i.ua.log.Warn("sip: the answer in the 2xx differs from the early one, and the media handler cannot switch",
			"early_tag", tag, "tag", resp.Header.ToTag())
		return nil
	}
	if err := r.ReplaceAnswer(ctx, d, i.opts.Media); err != nil {
		return fmt.Errorf("answer of the 2xx: %w", err)
	}
	return nil
}
