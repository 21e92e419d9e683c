// Package interop holds the tests that run sipua against real SIP
// software on 127.0.0.1 (issue 6's interop lab). The peers are installed by
// interop/install.sh, which scripts/test.sh runs before go test; a test
// whose peer is missing fails and says how to install it, it is never
// skipped.
//
// StartKamailio starts a Kamailio registrar and proxy for Domain from the
// template in kamailio/ with ports chosen at run time (UDP, TCP, TLS, WS,
// WSS) and a freshly generated self-signed certificate, and stops it by
// its PID when the test ends. The configuration demands digest
// authentication from the test users in Users (401 for REGISTER, 407 for
// requests out of dialog), record-routes dialogs, and refuses in-dialog
// requests that ignore the route set (Kamailio.RouteSetViolations).
//
// StartKamailioWith starts Kamailio from another configuration template on
// one UDP/TCP/WS port: examples/cluster's dispatcher and registrar
// (TestClusterDispatcher, TestMetricsBotScrape) and the presence server of
// kamailio/presence.cfg (TestPresencePublishSIPjs, TestPresenceBLF).
//
// StartPeer starts a SIP.js or JsSIP user agent under Node (node/, see
// node/README.md for the JSON-lines protocol): the test sends it commands
// (Peer.Do) and waits for its events (Peer.Expect, Peer.WaitEvent).
// StartSipp runs a sipp scenario from sipp/. StartBaresip runs baresip
// (plain RTP) driven over ctrl_tcp (baresip/README.md). StartChromium and
// StartBrowserPeer run SIP.js in headless Chromium with real WebRTC
// (web/README.md). BuildExamples compiles example programs (softphone,
// bot) and StartApp runs one, driven through its standard input and
// checked by the lines it prints (apps_test.go). Every process is stopped by PID when its test ends, and
// its log and SIP trace are printed when the test fails.
//
// TestRecordTraces (record_test.go) records testdata/traces from these
// peers when SIPUA_RECORD=1, and otherwise checks the committed traces,
// which the root package's replay tests play against our UserAgent.
package interop
