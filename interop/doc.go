// Package interop holds the tests that run sipua against real SIP
// software on 127.0.0.1 (issue 6's interop lab). The peers are installed by
// interop/install.sh, which scripts/test.sh runs before go test; a test
// whose peer is missing fails and says how to install it, it is never
// skipped.
//
// Kamailio starts a Kamailio registrar from the template in kamailio/
// with ports chosen at run time and a freshly generated self-signed
// certificate, and stops it by its PID when the test ends.
package interop
