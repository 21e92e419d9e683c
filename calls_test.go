package sip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/message"
)

const testSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// callUA starts a UserAgent with a fixed-SDP media factory.
func callUA(t *testing.T, user string, onInvite func(*Invitation)) (*UserAgent, *TestMediaFactory) {
	t.Helper()
	hs := &TestMediaFactory{SDP: testSDP}
	ua := StartTestUA(t, UserAgentOptions{
		URI:          "sip:" + user + "@127.0.0.1",
		Delegate:     UserAgentDelegate{OnInvite: onInvite},
		MediaFactory: hs.New,
	})
	return ua, hs
}

// states records a session's states.
func watch(s *Session) *recorder[SessionState] {
	var r recorder[SessionState]
	s.OnStateChange(r.add)
	return &r
}

func waitState(t *testing.T, s *Session, want SessionState) {
	t.Helper()
	require.Eventually(t, func() bool { return s.State() == want }, 5*time.Second, 5*time.Millisecond, "state %v", s.State())
}

func TestCallAcceptAndBye(t *testing.T) {
	invs := make(chan *Invitation, 1)
	bob, bobMedia := callUA(t, "bob", func(inv *Invitation) {
		invs <- inv
		assert.NoError(t, inv.Progress(ctx5(t), ProgressOptions{}))
		assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{Media: media.Options{Constraints: media.Constraints{Audio: true}}}))
	})
	alice, aliceMedia := callUA(t, "alice", nil)

	call, err := NewInviter(alice, addr(bob), InviterOptions{ExtraHeaders: []string{"X-Call: 1"}})
	require.NoError(t, err)
	aliceStates := watch(call.Session)
	var progress, accepted sync.WaitGroup
	progress.Add(1)
	accepted.Add(1)
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{
		OnProgress: func(r *message.Response) { assert.Equal(t, 180, r.StatusCode); progress.Done() },
		OnAccept:   func(r *message.Response) { accepted.Done() },
	}))
	progress.Wait()
	accepted.Wait()
	assert.Equal(t, SessionEstablished, call.State())
	inv := <-invs
	assert.Equal(t, "1", inv.Request.Header.Get("X-Call"))
	assert.Equal(t, "application/sdp", inv.Request.Header.ContentType())
	waitState(t, inv.Session, SessionEstablished)
	bobStates := watch(inv.Session)

	cid, lt, rt := call.DialogID()
	bcid, blt, brt := inv.DialogID()
	assert.Equal(t, cid, bcid)
	assert.Equal(t, lt, brt)
	assert.Equal(t, rt, blt)
	assert.Equal(t, []string{"application/sdp"}, aliceMedia.Last().Types(), "the answer was applied")
	assert.Equal(t, []string{"application/sdp"}, bobMedia.Last().Types(), "the offer was applied")

	require.NoError(t, call.Bye(ctx5(t)))
	assert.Equal(t, SessionTerminated, call.State())
	assert.Equal(t, EndLocalBye, call.EndReason().Cause)
	waitState(t, inv.Session, SessionTerminated)
	assert.Equal(t, EndRemoteBye, inv.EndReason().Cause)
	<-call.Done()
	<-inv.Done()
	assert.ErrorIs(t, call.Bye(ctx5(t)), ErrInvalidState)
	aliceStates.wait(t, []SessionState{SessionEstablishing, SessionEstablished, SessionTerminating, SessionTerminated})
	bobStates.wait(t, []SessionState{SessionTerminated})
	require.Eventually(t, func() bool { return aliceMedia.Last().Closed() }, time.Second, 5*time.Millisecond)
}

func TestCallReject(t *testing.T) {
	invs := make(chan *Invitation, 1)
	checked := make(chan struct{})
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		defer close(checked)
		invs <- inv
		assert.NoError(t, inv.Reject(context.Background(), 486, "Busy Here"))
		assert.ErrorIs(t, inv.Accept(context.Background(), AcceptOptions{}), ErrInvalidState)
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	rejected := make(chan int, 1)
	err := call.Invite(ctx5(t), InviteOptions{OnReject: func(r *message.Response) { rejected <- r.StatusCode }})
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 486, re.StatusCode)
	assert.Equal(t, 486, <-rejected)
	assert.Equal(t, EndReason{Cause: EndRejected, StatusCode: 486}, call.EndReason())
	assert.Equal(t, "rejected (486)", call.EndReason().String())
	inv := <-invs
	<-checked
	waitState(t, inv.Session, SessionTerminated)
	assert.Equal(t, EndRejected, inv.EndReason().Cause)
	assert.ErrorIs(t, call.Invite(ctx5(t), InviteOptions{}), ErrInvalidState)
}

func TestCallCancelWhileRinging(t *testing.T) {
	invs := make(chan *Invitation, 1)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		assert.NoError(t, inv.Progress(ctx5(t), ProgressOptions{}))
		invs <- inv
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	ringing := make(chan struct{})
	go func() {
		<-ringing
		assert.NoError(t, call.Cancel(ctx5(t), `SIP;cause=200;text="Call completed elsewhere"`))
	}()
	var once sync.Once
	err := call.Invite(ctx5(t), InviteOptions{OnProgress: func(*message.Response) { once.Do(func() { close(ringing) }) }})
	require.ErrorIs(t, err, ErrCanceled)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 487, re.StatusCode)
	assert.Equal(t, EndCanceled, call.EndReason().Cause)
	inv := <-invs
	waitState(t, inv.Session, SessionTerminated)
	assert.Equal(t, EndRemoteCancel, inv.EndReason().Cause)
	assert.ErrorIs(t, inv.Accept(ctx5(t), AcceptOptions{}), ErrInvalidState)
}

func TestCallCanceledByContext(t *testing.T) {
	invs := make(chan *Invitation, 1)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		assert.NoError(t, inv.Progress(ctx5(t), ProgressOptions{StatusCode: 183}))
		invs <- inv
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := call.Invite(ctx, InviteOptions{})
	require.ErrorIs(t, err, ErrCanceled)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	inv := <-invs
	waitState(t, inv.Session, SessionTerminated)
	assert.Equal(t, EndRemoteCancel, inv.EndReason().Cause)
	waitState(t, call.Session, SessionTerminated)
	assert.Equal(t, EndCanceled, call.EndReason().Cause)
}

func TestCalleeHangsUp(t *testing.T) {
	invs := make(chan *Invitation, 1)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{}))
		invs <- inv
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	inv := <-invs
	waitState(t, inv.Session, SessionEstablished)
	assert.NoError(t, inv.Bye(ctx5(t)))
	assert.Equal(t, EndLocalBye, inv.EndReason().Cause)
	waitState(t, call.Session, SessionTerminated)
	assert.Equal(t, EndRemoteBye, call.EndReason().Cause)
}

func TestCallOfferless(t *testing.T) {
	invs := make(chan *Invitation, 1)
	bob, bobMedia := callUA(t, "bob", func(inv *Invitation) {
		assert.Empty(t, inv.Request.Body)
		assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{}))
		invs <- inv
	})
	alice, aliceMedia := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{Offerless: true})
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	inv := <-invs
	waitState(t, inv.Session, SessionEstablished)
	assert.Equal(t, []string{"application/sdp"}, aliceMedia.Last().Types(), "the offer in the 200")
	require.Eventually(t, func() bool {
		return len(bobMedia.Last().Types()) == 1
	}, 2*time.Second, 5*time.Millisecond, "the answer in the ACK")
	require.NoError(t, call.Bye(ctx5(t)))
}

func TestInviteWithoutOnInvite(t *testing.T) {
	bob := startUA(t, "bob", UserAgentDelegate{})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	err := call.Invite(ctx5(t), InviteOptions{})
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 480, re.StatusCode)
	assert.False(t, errors.Is(err, ErrCanceled))
}

func (r *recorder[S]) wait(t *testing.T, want []S) {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.get()) >= len(want) }, 2*time.Second, 5*time.Millisecond, "states %v", r.get())
	assert.Equal(t, want, r.get())
}

func TestStopEndsCalls(t *testing.T) {
	invs := make(chan *Invitation, 2)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		if inv.Request.Header.Get("X-Ring") != "" {
			assert.NoError(t, inv.Progress(ctx5(t), ProgressOptions{}))
		} else {
			assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{}))
		}
		invs <- inv
	})
	alice, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", MediaFactory: NoMedia,
		Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
	require.NoError(t, err)
	require.NoError(t, alice.Start(ctx5(t)))
	established, _ := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, established.Invite(ctx5(t), InviteOptions{}))
	accepted := <-invs
	waitState(t, accepted.Session, SessionEstablished)

	ringing, _ := NewInviter(alice, addr(bob), InviterOptions{ExtraHeaders: []string{"X-Ring: 1"}})
	errc := make(chan error, 1)
	go func() { errc <- ringing.Invite(context.Background(), InviteOptions{}) }()
	rung := <-invs
	require.NoError(t, alice.Stop(ctx5(t)))
	assert.Equal(t, EndLocalBye, established.EndReason().Cause)
	waitState(t, accepted.Session, SessionTerminated)
	assert.Equal(t, EndRemoteBye, accepted.EndReason().Cause)
	// The ringing call's Invite ends canceled, or (rarely, when Stop's
	// final sweep comes before the 487 is processed) stopped.
	err = <-errc
	assert.True(t, errors.Is(err, ErrCanceled) || errors.Is(err, ErrStopped), "%v", err)
	waitState(t, rung.Session, SessionTerminated)
	assert.Equal(t, EndRemoteCancel, rung.EndReason().Cause)
}

// TestNilMediaFactoryIsSignallingOnly: without a MediaFactory, calls carry
// no session description (the root package links no media stack) and an
// offer is refused with 488 (nothing to answer it with); media/webrtc's
// factory, named explicitly, negotiates WebRTC (DTLS-SRTP in the SDP).
func TestNilMediaFactoryIsSignallingOnly(t *testing.T) {
	invs := make(chan *Invitation, 1)
	accept := UserAgentDelegate{OnInvite: func(inv *Invitation) {
		invs <- inv
		assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{}))
	}}
	bob := startUA(t, "bob", accept)
	alice := startUA(t, "alice", UserAgentDelegate{})
	call, err := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, err)
	assert.Nil(t, call.MediaHandler())
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	inv := <-invs
	assert.Empty(t, inv.Request.Body)
	require.NoError(t, call.Bye(ctx5(t)))

	withWebRTC := func(name string, d UserAgentDelegate) *UserAgent {
		ua, err := NewUserAgent(UserAgentOptions{URI: "sip:" + name + "@127.0.0.1", Delegate: d,
			MediaFactory: webrtc.NewFactory(webrtc.Config{LoopbackOnly: true}),
			Transport:    TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
		require.NoError(t, err)
		require.NoError(t, ua.Start(ctx5(t)))
		t.Cleanup(func() { _ = ua.Stop(context.Background()) })
		return ua
	}
	carol := withWebRTC("carol", UserAgentDelegate{})
	call, err = NewInviter(carol, addr(bob), InviterOptions{})
	require.NoError(t, err)
	var re *ResponseError
	require.ErrorAs(t, call.Invite(ctx5(t), InviteOptions{}), &re)
	assert.Equal(t, 488, re.StatusCode)

	dave := withWebRTC("dave", accept)
	call, err = NewInviter(carol, addr(dave), InviterOptions{})
	require.NoError(t, err)
	_, isWebRTC := call.MediaHandler().(*webrtc.Handler)
	assert.True(t, isWebRTC)
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	inv = <-invs
	assert.Contains(t, string(inv.Request.Body), "a=fingerprint:")
	assert.Contains(t, string(inv.Request.Body), "UDP/TLS/RTP/SAVPF")
	require.NoError(t, call.Bye(ctx5(t)))
}

// TestEarlyMedia: bob answers the offer in a 183 before he accepts; alice,
// asking for early media, applies it at once, and the 200 repeats it.
func TestEarlyMedia(t *testing.T) {
	invs := make(chan *Invitation, 1)
	proceed := make(chan struct{})
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		invs <- inv
		assert.NoError(t, inv.Progress(context.Background(), ProgressOptions{EarlyMedia: true}))
		<-proceed
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
	})
	alice, aliceMedia := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{EarlyMedia: true})
	var early *message.Response
	finals := make(chan *message.Response, 1)
	applied := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- call.Invite(ctx5(t), InviteOptions{
			OnProgress: func(r *message.Response) {
				early = r
				f := aliceMedia.Last()
				require.Eventually(t, func() bool { return len(f.Types()) == 1 }, time.Second, 5*time.Millisecond)
				applied <- 1
			},
			OnAccept: func(r *message.Response) { finals <- r },
		})
	}()
	<-applied
	close(proceed)
	require.NoError(t, <-errc)
	<-invs
	assert.Equal(t, 183, early.StatusCode)
	assert.NotEmpty(t, early.Body)
	final := <-finals
	assert.Equal(t, string(early.Body), string(final.Body), "the 200 repeats the early answer")
	assert.Len(t, aliceMedia.Last().Types(), 1, "the answer is applied once")
	require.NoError(t, call.Bye(ctx5(t)))
}

// TestInDialogInfoMessageDTMF: INFO, MESSAGE and SIP INFO DTMF inside a
// call, both ways.
func TestInDialogInfoMessageDTMF(t *testing.T) {
	invs := make(chan *Invitation, 1)
	got := make(chan string, 16)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		inv.SetDelegate(SessionDelegate{
			OnMessage: func(r *IncomingRequest) { got <- "message " + string(r.Request.Body) },
			OnDTMF:    func(tone rune, d time.Duration) { got <- fmt.Sprintf("dtmf %c %v", tone, d) },
		})
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		invs <- inv
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	call.SetDelegate(SessionDelegate{OnInfo: func(r *IncomingRequest) {
		assert.NoError(t, r.Accept(context.Background()))
		got <- "info " + string(r.Request.Body)
	}})
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	inv := <-invs
	waitState(t, inv.Session, SessionEstablished)

	require.NoError(t, call.Message(ctx5(t), "text/plain", []byte("in the call")))
	assert.Equal(t, "message in the call", <-got)
	require.NoError(t, call.SendDTMF(ctx5(t), "5#", 160*time.Millisecond, DTMFInfo))
	assert.Equal(t, "dtmf 5 160ms", <-got)
	assert.Equal(t, "dtmf # 160ms", <-got)
	require.NoError(t, inv.Info(ctx5(t), "application/x-test", []byte("ping")))
	assert.Equal(t, "info ping", <-got)
	// Without OnInfo, a body bob cannot read is refused 415; without
	// OnMessage, MESSAGE gets 405.
	var re *ResponseError
	require.ErrorAs(t, call.Info(ctx5(t), "application/x-unknown", []byte("?")), &re)
	assert.Equal(t, 415, re.StatusCode)
	require.ErrorAs(t, inv.Message(ctx5(t), "text/plain", []byte("x")), &re)
	assert.Equal(t, 405, re.StatusCode)
	assert.ErrorIs(t, call.SendDTMF(ctx5(t), "x", 0, DTMFInfo), ErrBadOptions)
	require.NoError(t, call.Bye(ctx5(t)))
	assert.ErrorIs(t, call.Info(ctx5(t), "text/plain", nil), ErrInvalidState)
}

// TestHoldUnhold: re-INVITEs over real WebRTC handlers move the media
// direction to sendonly/recvonly and back (RFC 3264 §8.4).
func TestHoldUnhold(t *testing.T) {
	mf := webrtc.NewFactory(webrtc.Config{LoopbackOnly: true})
	start := func(name string, d UserAgentDelegate) *UserAgent {
		ua, err := NewUserAgent(UserAgentOptions{URI: "sip:" + name + "@127.0.0.1", MediaFactory: mf, Delegate: d,
			Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
		require.NoError(t, err)
		require.NoError(t, ua.Start(ctx5(t)))
		t.Cleanup(func() { _ = ua.Stop(context.Background()) })
		return ua
	}
	invs := make(chan *Invitation, 1)
	bob := start("bob", UserAgentDelegate{OnInvite: func(inv *Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		invs <- inv
	}})
	alice := start("alice", UserAgentDelegate{})
	call, err := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	inv := <-invs
	waitState(t, inv.Session, SessionEstablished)
	dir := func(s *Session) string { return s.MediaHandler().(*webrtc.Handler).Stats().Audio.Direction.String() }
	assert.Equal(t, "sendrecv", dir(call.Session))

	require.NoError(t, call.Hold(ctx5(t)))
	assert.True(t, call.OnHold())
	assert.Equal(t, "sendonly", dir(call.Session))
	require.Eventually(t, func() bool { return dir(inv.Session) == "recvonly" }, 2*time.Second, 10*time.Millisecond)

	require.NoError(t, call.Unhold(ctx5(t)))
	assert.False(t, call.OnHold())
	assert.Equal(t, "sendrecv", dir(call.Session))
	require.Eventually(t, func() bool { return dir(inv.Session) == "sendrecv" }, 2*time.Second, 10*time.Millisecond)

	// The callee re-INVITEs too.
	require.NoError(t, inv.Reinvite(ctx5(t), ReinviteOptions{}))
	require.NoError(t, call.Bye(ctx5(t)))
	assert.ErrorIs(t, call.Hold(ctx5(t)), ErrInvalidState)
}

// TestBlindTransfer: alice, in a call with bob, transfers him to carol;
// bob calls carol and reports the progress back by NOTIFY.
func TestBlindTransfer(t *testing.T) {
	carolCalls := make(chan *Invitation, 1)
	carol, _ := callUA(t, "carol", func(inv *Invitation) {
		assert.NoError(t, inv.Progress(context.Background(), ProgressOptions{}))
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		carolCalls <- inv
	})
	transferred := make(chan *Inviter, 1)
	bobCalls := make(chan *Invitation, 1)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		inv.SetDelegate(SessionDelegate{OnRefer: func(r *Referral) {
			assert.Equal(t, "carol", r.ReferTo.URI.User)
			assert.Contains(t, r.ReferredBy, "sip:alice@")
			call, err := r.Accept(context.Background(), InviterOptions{})
			assert.NoError(t, err)
			transferred <- call
		}})
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		bobCalls <- inv
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	bobSide := <-bobCalls
	waitState(t, bobSide.Session, SessionEstablished)

	progress := make(chan string, 8)
	accepted := make(chan int, 1)
	require.NoError(t, call.Refer(ctx5(t), addr(carol), ReferOptions{
		OnAccept: func(r *message.Response) { accepted <- r.StatusCode },
		OnNotify: func(code int, final bool) { progress <- fmt.Sprint(code, final) },
	}))
	assert.Equal(t, 202, <-accepted)
	assert.Equal(t, "100 false", <-progress)
	assert.Equal(t, "180 false", <-progress)
	assert.Equal(t, "200 true", <-progress)
	newCall := <-transferred
	carolSide := <-carolCalls
	assert.Equal(t, SessionEstablished, newCall.State())
	assert.Contains(t, carolSide.Request.Header.Get("Referred-By"), "sip:alice@")

	require.NoError(t, call.Bye(ctx5(t)))
	require.NoError(t, newCall.Bye(ctx5(t)))
	<-carolSide.Done()
}

// TestProvisionalAndFinalShareTheToTag: the 180 and the 200 to one INVITE
// carry the same To tag (one dialog, RFC 3261 §12.1.1).
func TestProvisionalAndFinalShareTheToTag(t *testing.T) {
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		assert.NoError(t, inv.Progress(context.Background(), ProgressOptions{}))
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
	})
	alice, _ := callUA(t, "alice", nil)
	call, _ := NewInviter(alice, addr(bob), InviterOptions{})
	tags := make(chan string, 2)
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{
		OnProgress: func(r *message.Response) { tags <- r.Header.ToTag() },
		OnAccept:   func(r *message.Response) { tags <- r.Header.ToTag() },
	}))
	t180, t200 := <-tags, <-tags
	assert.NotEmpty(t, t180)
	assert.Equal(t, t180, t200)
	require.NoError(t, call.Bye(ctx5(t)))
}

// TestAttendedTransfer: alice talks to bob, then consults carol; she
// transfers bob to carol with Replaces, so carol's call with bob takes
// the place of her call with alice (RFC 3891, RFC 5589).
func TestAttendedTransfer(t *testing.T) {
	carolCalls := make(chan *Invitation, 2)
	carol, _ := callUA(t, "carol", func(inv *Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		carolCalls <- inv
	})
	bobCalls := make(chan *Invitation, 1)
	transferred := make(chan *Inviter, 1)
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		inv.SetDelegate(SessionDelegate{OnRefer: func(r *Referral) {
			call, err := r.Accept(context.Background(), InviterOptions{})
			assert.NoError(t, err)
			transferred <- call
		}})
		assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		bobCalls <- inv
	})
	alice, _ := callUA(t, "alice", nil)

	toBob, _ := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, toBob.Invite(ctx5(t), InviteOptions{}))
	<-bobCalls
	toCarol, _ := NewInviter(alice, addr(carol), InviterOptions{})
	require.NoError(t, toCarol.Invite(ctx5(t), InviteOptions{}))
	consult := <-carolCalls
	waitState(t, consult.Session, SessionEstablished)

	done := make(chan struct{})
	require.NoError(t, toBob.ReferReplacing(ctx5(t), toCarol.Session, ReferOptions{OnNotify: func(code int, final bool) {
		if final {
			assert.Equal(t, 200, code)
			close(done)
		}
	}}))
	<-done
	bobToCarol := <-transferred
	replacing := <-carolCalls
	assert.Same(t, consult.Session, replacing.Replaces)
	assert.Contains(t, replacing.Request.Header.Get("Replaces"), consult.Request.Header.CallID())
	<-consult.Done()
	assert.Equal(t, EndReplaced, consult.EndReason().Cause)
	<-toCarol.Done()
	assert.Equal(t, EndRemoteBye, toCarol.EndReason().Cause, "carol hung up on alice")
	assert.Equal(t, SessionEstablished, bobToCarol.State())

	require.NoError(t, toBob.Bye(ctx5(t)))
	require.NoError(t, bobToCarol.Bye(ctx5(t)))
	<-replacing.Done()

	// A Replaces that names no call of carol's is refused 481.
	bad, _ := NewInviter(alice, addr(carol), InviterOptions{ExtraHeaders: []string{"Replaces: nope;to-tag=a;from-tag=b"}})
	var re *ResponseError
	require.ErrorAs(t, bad.Invite(ctx5(t), InviteOptions{}), &re)
	assert.Equal(t, 481, re.StatusCode)
}
