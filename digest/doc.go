// Package digest implements HTTP Digest authentication as SIP uses it
// (RFC 3261 §22, RFC 7616, RFC 8760): the client side that answers 401 and
// 407 challenges, and a small verifier for tests and embedded registrars.
//
// # Client
//
// A Client answers the challenges of a 401 (WWW-Authenticate) or 407
// (Proxy-Authenticate) response by adding Authorization or
// Proxy-Authorization header fields to the request the caller sends next:
//
//	c := digest.NewClient(digest.Credentials{Username: "alice", Password: pw})
//	// resp is the 401/407 to req; next is req with CSeq+1 and a new branch.
//	if err := c.Authorize(next, resp); err != nil {
//		// errors.Is(err, digest.ErrAuthFailed): wrong credentials, give up.
//	}
//
// It supports the algorithms MD5, MD5-sess, SHA-256, SHA-256-sess,
// SHA-512-256 and SHA-512-256-sess, qop "auth" and "auth-int", the RFC
// 2069 form without qop, opaque, and userhash. When a response carries
// several challenges for one realm it answers the one with the strongest
// algorithm (SHA-512-256, then SHA-256, then MD5); when it challenges
// several realms (a forking proxy may aggregate them, RFC 3261 §16.7) it
// answers every realm it can, with one header field each.
//
// The client counts nonce uses (nc) per nonce, retries a challenge marked
// stale=true with its new nonce without asking the application, and never
// loops on a wrong password: when the response to a request that carried
// its credentials for a realm challenges that realm again without
// stale=true, Authorize fails with ErrAuthFailed.
//
// Client.Preauthorize reuses a nonce (RFC 7616 §3.4.5): before a new
// request goes out it adds credentials for the realms (qop=auth only)
// whose credentials answered a request to the same Request-URI, with the
// next nonce count and a fresh cnonce, so that a refresh REGISTER is
// accepted in one transaction by a server that allows reuse (Kamailio
// with nonce_count). If the server refuses them (stale nonce, nonce
// count out of its window), Authorize answers its challenge as a first
// one.
//
// # Server
//
// Server issues challenges with stateless HMAC-protected nonces and
// verifies Authorization headers against a password (or HA1) lookup,
// with nonce expiry (stale) and nonce-count replay detection.
//
// # Secrets
//
// Passwords and HA1 values never appear in errors, in String or Format
// output, or anywhere else the package writes text: Credentials, Client
// and Server format themselves with the secrets redacted. The package
// never logs.
package digest
