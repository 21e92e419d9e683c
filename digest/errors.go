package digest

import "errors"

// Sentinel errors. Every error the package returns wraps one of them (or an
// error returned by an application callback), so callers test with
// errors.Is.
var (
	// ErrAuthFailed reports rejected credentials. On the client: the
	// response to a request that carried credentials for a realm challenged
	// that realm again (without stale=true), so the username or password is
	// wrong; the caller must not retry. On the server: the response digest
	// did not match, or the user is unknown.
	ErrAuthFailed = errors.New("digest: authentication failed")
	// ErrUnsupported reports that no challenge (or credentials) used a
	// scheme, algorithm or qop this package supports.
	ErrUnsupported = errors.New("digest: unsupported challenge")
	// ErrMalformed reports a syntax error in a challenge or credentials
	// value, or a message that lacks what digest needs (Call-ID, CSeq).
	ErrMalformed = errors.New("digest: malformed")
	// ErrStale is returned by Server.Verify when the credentials were
	// computed correctly but with an expired or unknown nonce, or with a
	// nonce count already seen: answer with a new challenge marked
	// stale=true.
	ErrStale = errors.New("digest: stale nonce")
	// ErrNoCredentials is returned by Server.Verify when the request has
	// no Digest credentials for the server's realm: answer with a
	// challenge.
	ErrNoCredentials = errors.New("digest: no credentials")
)
