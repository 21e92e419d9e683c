package sip

import (
	"errors"
	"fmt"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
)

// errAuthRefused is what an authorizer returns when the credentials were
// refused (a second challenge after an answered one).
var errAuthRefused = errors.New("sip: credentials refused")

// authorizer answers authentication challenges.
type authorizer interface {
	// Authorize adds credentials for the challenges of resp to req. It
	// returns errAuthRefused (wrapped) when the credentials were refused,
	// another error when no challenge can be answered.
	Authorize(req *message.Request, resp *message.Response) error
	// Preauthorize adds credentials to a new request for the realms whose
	// nonce it may reuse (RFC 7616 §3.4.5), before any challenge.
	Preauthorize(req *message.Request) (bool, error)
}

// newAuthorizer returns the digest client for the UserAgent's
// credentials, or nil without credentials (challenges then end requests
// as *ResponseError).
func newAuthorizer(opts UserAgentOptions) authorizer {
	if opts.Credentials != nil {
		return digestAuth{digest.NewClientFunc(opts.Credentials)}
	}
	if opts.AuthorizationPassword == "" && opts.AuthorizationHA1 == nil {
		return nil
	}
	return digestAuth{digest.NewClient(digest.Credentials{
		Username: opts.AuthorizationUsername,
		Password: opts.AuthorizationPassword,
		HA1:      opts.AuthorizationHA1,
	})}
}

type digestAuth struct{ c *digest.Client }

func (d digestAuth) Authorize(req *message.Request, resp *message.Response) error {
	err := d.c.Authorize(req, resp)
	if errors.Is(err, digest.ErrAuthFailed) {
		return fmt.Errorf("%w: %w", errAuthRefused, err)
	}
	return err
}

func (d digestAuth) Preauthorize(req *message.Request) (bool, error) { return d.c.Preauthorize(req) }

// preauthorize adds reusable credentials to the first request of o, so
// that a refresh to a server that accepted them before is not challenged
// again. A failed lookup sends the request without: its challenge then
// reports the error. Runs on the loop.
func (ua *UserAgent) preauthorize(o *outgoing) {
	if ua.auth == nil || o.tx != nil {
		return // no credentials, or a request resent after a challenge
	}
	if _, err := ua.auth.Preauthorize(o.req); err != nil {
		ua.log.Debug("sip: no credentials reused", "method", o.req.Method, "err", err)
	}
}
