package digest_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
)

func ExampleParseChallenge() {
	ch, err := digest.ParseChallenge(`Digest realm="biloxi.com", qop="auth,auth-int", algorithm=SHA-256, ` +
		`nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41", stale=TRUE`)
	if err != nil {
		panic(err)
	}
	fmt.Println("realm:", ch.Realm)
	fmt.Println("algorithm:", ch.Algorithm)
	fmt.Println("qop:", ch.QOP)
	fmt.Println("stale:", ch.Stale)
	fmt.Println("opaque:", ch.Opaque)

	_, err = digest.ParseChallenge(`NoOneKnowsThisScheme opaque-data=here`)
	fmt.Println(errors.Is(err, digest.ErrUnsupported))
	// Output:
	// realm: biloxi.com
	// algorithm: SHA-256
	// qop: [auth auth-int]
	// stale: true
	// opaque: 5ccc069c403ebaf9f0171e9517f40e41
	// true
}

// A REGISTER is challenged by a registrar (here a digest.Server), answered
// by a Client, and accepted.
func ExampleClient_Authorize() {
	registrar, err := digest.NewServer(digest.ServerOptions{
		Realm: "biloxi.com",
		Lookup: func(user string) (digest.Credentials, bool) {
			return digest.Credentials{Password: "zanzibar"}, user == "bob"
		},
	})
	if err != nil {
		panic(err)
	}
	client := digest.NewClient(digest.Credentials{Username: "bob", Password: "zanzibar"})

	req := message.NewRequest("REGISTER", message.MustParseURI("sip:biloxi.com"),
		message.Address{URI: message.MustParseURI("sip:bob@biloxi.com")},
		message.Address{URI: message.MustParseURI("sip:bob@biloxi.com")})

	// The registrar challenges the first REGISTER.
	_, err = registrar.Verify(req)
	fmt.Println("first REGISTER:", errors.Is(err, digest.ErrNoCredentials))
	resp := message.NewResponse(req, 401, "", "")
	registrar.Challenge(resp, false)

	// The UA sends the REGISTER again with CSeq+1 (and, on the wire, a new
	// Via branch), with the credentials the Client adds.
	retry := req.Clone()
	retry.Header.Set("CSeq", "2 REGISTER")
	if err := client.Authorize(retry, resp); err != nil {
		panic(err)
	}
	fmt.Println("Authorization added:", retry.Header.Has("Authorization"))

	user, err := registrar.Verify(retry)
	fmt.Println("registered:", user, err)
	fmt.Println(client) // never shows the password
	// Output:
	// first REGISTER: true
	// Authorization added: true
	// registered: bob <nil>
	// digest.Client{realms: 1}
}

// After one challenge, the refresh REGISTER carries credentials from the
// start: the same nonce with the next nonce count, accepted at once.
func ExampleClient_Preauthorize() {
	registrar, err := digest.NewServer(digest.ServerOptions{
		Realm:      "biloxi.com",
		Algorithms: []string{"MD5"},
		Lookup: func(user string) (digest.Credentials, bool) {
			return digest.Credentials{Password: "zanzibar"}, user == "bob"
		},
	})
	if err != nil {
		panic(err)
	}
	client := digest.NewClient(digest.Credentials{Username: "bob", Password: "zanzibar"})
	bob := message.Address{URI: message.MustParseURI("sip:bob@biloxi.com")}

	// The first registration: challenged, answered, accepted.
	req := message.NewRequest("REGISTER", message.MustParseURI("sip:biloxi.com"), bob, bob)
	resp := message.NewResponse(req, 401, "", "")
	registrar.Challenge(resp, false)
	retry := req.Clone()
	retry.Header.Set("CSeq", "2 REGISTER")
	if err := client.Authorize(retry, resp); err != nil {
		panic(err)
	}
	_, err = registrar.Verify(retry)
	fmt.Println("registered:", err == nil)

	// The refresh: a new REGISTER, credentials added before sending.
	refresh := req.Clone()
	refresh.Header.Set("CSeq", "3 REGISTER")
	added, err := client.Preauthorize(refresh)
	if err != nil {
		panic(err)
	}
	fmt.Println("credentials added:", added, "nc=00000002:", strings.Contains(refresh.Header.Get("Authorization"), "nc=00000002"))
	_, err = registrar.Verify(refresh)
	fmt.Println("refreshed in one transaction:", err == nil)
	// Output:
	// registered: true
	// credentials added: true nc=00000002: true
	// refreshed in one transaction: true
}
