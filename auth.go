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
