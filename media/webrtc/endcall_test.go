package webrtc_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// TestICEFailureEndsCall: a call whose media path never connects (the
// callee gathers no candidate, as a zero Config on a loopback-only host
// does) is established by SIP, then ended by the caller with a BYE and
// its own cause, sip.EndMediaFailure wrapping media.ErrICEFailed, once
// ICE fails.
func TestICEFailureEndsCall(t *testing.T) {
	srv, err := sipserver.New(sipserver.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	short := func(s *pion.SettingEngine) {
		s.SetICETimeouts(300*time.Millisecond, 700*time.Millisecond, 100*time.Millisecond)
	}
	newUA := func(user string, cfg webrtc.Config, onInvite func(*sip.Invitation)) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:          "sip:" + user + "@" + sipserver.DefaultDomain,
			Transport:    sip.TransportOptions{Server: srv.URI(transport.TCP).String()},
			MediaFactory: webrtc.NewFactory(cfg),
			Delegate:     sip.UserAgentDelegate{OnInvite: onInvite},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := ua.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ua.Stop(context.Background()) })
		return ua
	}
	invs := make(chan *sip.Invitation, 1)
	// bob's ICE gives up later than alice's: alice ends the call.
	slow := func(s *pion.SettingEngine) {
		s.SetICETimeouts(300*time.Millisecond, 20*time.Second, 100*time.Millisecond)
	}
	bob := newUA("bob", webrtc.Config{IncludeLoopback: true, IPFilter: func(net.IP) bool { return false }, Configure: slow},
		func(inv *sip.Invitation) { invs <- inv })
	reg, err := sip.NewRegisterer(bob, sip.RegistererOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	alice := newUA("alice", webrtc.Config{LoopbackOnly: true, Configure: short}, nil)
	call, err := sip.NewInviter(alice, srv.AOR("bob"), sip.InviterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
	inv := <-invs
	if err := inv.Accept(ctx, sip.AcceptOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatalf("the call did not end: state %v, media %+v", call.State(), call.MediaHandler().(*webrtc.Handler).Stats())
	}
	r := call.EndReason()
	t.Logf("ended: %v (%v)", r.Cause, r.Err)
	if r.Cause != sip.EndMediaFailure || !errors.Is(r.Err, media.ErrICEFailed) {
		t.Errorf("end reason %v (%v), want EndMediaFailure wrapping media.ErrICEFailed", r.Cause, r.Err)
	}
	select {
	case <-inv.Done():
	case <-ctx.Done():
		t.Fatal("the callee's side did not end")
	}
	if c := inv.EndReason().Cause; c != sip.EndRemoteBye {
		t.Errorf("the callee's end: %v, want a remote BYE", c)
	}
}
