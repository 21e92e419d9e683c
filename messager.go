package sip

import (
	"context"
	"fmt"
	"strings"

	"github.com/sipua/sip/message"
)

// RequestOptions are options for an out-of-dialog request.
type RequestOptions struct {
	// ExtraHeaders are added to the request, as "Name: value".
	ExtraHeaders []string
}

// Messager sends an out-of-dialog MESSAGE (RFC 3428), as SIP.js's.
type Messager struct {
	ua          *UserAgent
	target      message.URI
	body        []byte
	contentType string
	opts        RequestOptions
}

// NewMessager returns a Messager that sends body, of contentType
// ("text/plain" when empty), to target, a SIP URI.
func NewMessager(ua *UserAgent, target string, body []byte, contentType string, opts RequestOptions) (*Messager, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if contentType == "" {
		contentType = "text/plain"
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return nil, err
	}
	return &Messager{ua: ua, target: u, body: body, contentType: contentType, opts: opts}, nil
}

func parseTarget(s string) (message.URI, error) {
	u, err := message.ParseURI(s)
	if err != nil {
		return message.URI{}, fmt.Errorf("%w: target: %w", ErrBadOptions, err)
	}
	if !u.IsSIP() && u.Scheme != "tel" {
		return message.URI{}, fmt.Errorf("%w: target %q is not a sip:, sips: or tel: URI", ErrBadOptions, s)
	}
	return u, nil
}

func checkExtraHeaders(hs []string) error {
	for _, h := range hs {
		n, _, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(n) == "" {
			return fmt.Errorf("%w: extra header %q: want \"Name: value\"", ErrBadOptions, h)
		}
	}
	return nil
}

// Message sends the MESSAGE and waits for the final response: nil for a
// 2xx, a *ResponseError for a rejection, an error wrapping ErrTimeout,
// ErrAuthFailed or ErrTransportClosed otherwise.
func (m *Messager) Message(ctx context.Context) error {
	req := m.ua.newRequest("MESSAGE", m.target, m.opts.ExtraHeaders)
	req.Header.Add("Content-Type", m.contentType)
	req.Body = m.body
	_, err := m.ua.request(ctx, req, nil)
	return err
}

// Options sends an out-of-dialog OPTIONS to target and returns the final
// response (RFC 3261 §11): a 2xx response with a nil error, or a non-2xx
// one with a *ResponseError. It serves as a ping too.
func (ua *UserAgent) Options(ctx context.Context, target string, opts RequestOptions) (*message.Response, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return nil, err
	}
	req := ua.newRequest("OPTIONS", u, opts.ExtraHeaders)
	req.Header.Add("Accept", "application/sdp")
	return ua.request(ctx, req, nil)
}

// newRequest builds an out-of-dialog request from the address of record
// to target (RFC 3261 §8.1.1).
func (ua *UserAgent) newRequest(method string, target message.URI, extra []string) *message.Request {
	from := message.Address{DisplayName: ua.opts.DisplayName, URI: ua.aor}
	to := message.Address{URI: target}
	to.URI.Params = ""
	to.URI.Headers = ""
	req := message.NewRequest(method, target, from, to)
	for _, x := range extra {
		n, v, _ := strings.Cut(x, ":")
		req.Header.Add(strings.TrimSpace(n), strings.TrimSpace(v))
	}
	return req
}
