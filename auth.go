package sip

import (
	"errors"

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

func newAuthorizer(opts UserAgentOptions) authorizer { return nil }
