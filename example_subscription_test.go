package sip_test

import (
	"context"
	"fmt"
	"time"

	sip "github.com/sipua/sip"
)

// Alice watches bob's presence: bob's UserAgent is the notifier (it
// accepts the SUBSCRIBE and sends NOTIFYs), alice's Subscriber receives
// them, then ends the subscription.
func ExampleSubscriber() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	watched := make(chan *sip.IncomingSubscription, 1)
	bob, _ := sip.NewUserAgent(sip.UserAgentOptions{
		URI:       "sip:bob@127.0.0.1",
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		Delegate: sip.UserAgentDelegate{
			OnSubscribe: func(s *sip.IncomingSubscription) {
				if s.Event() != "presence" {
					_ = s.Reject(context.Background(), 489, "")
					return
				}
				// Accept and send the current state at once.
				_ = s.Accept(ctx, sip.AcceptSubscriptionOptions{ContentType: "text/plain", Body: []byte("available")})
				watched <- s
			},
		},
	})
	if err := bob.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Stop(ctx)

	alice, _ := sip.NewUserAgent(sip.UserAgentOptions{
		URI:       "sip:alice@127.0.0.1",
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
	})
	if err := alice.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Stop(ctx)

	sub, err := sip.NewSubscriber(alice, bob.ContactURI().String(), "presence", sip.SubscriberOptions{Expires: 600})
	if err != nil {
		fmt.Println(err)
		return
	}
	notes := make(chan string, 4)
	sub.OnNotify(func(n *sip.Notification) {
		text := n.State.String()
		if len(n.Body()) > 0 {
			text += " " + string(n.Body())
		}
		if n.Reason != "" {
			text += " (" + n.Reason + ")"
		}
		notes <- text
	})
	if err := sub.Subscribe(ctx, sip.SubscribeOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("notify:", <-notes)

	// Bob's state changes.
	s := <-watched
	_ = s.Notify(ctx, sip.SubscriptionActive, "text/plain", []byte("busy"))
	fmt.Println("notify:", <-notes)

	if err := sub.Unsubscribe(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("notify:", <-notes)
	fmt.Println("subscription:", sub.State())
	// Output:
	// notify: Active available
	// notify: Active busy
	// notify: Terminated busy (timeout)
	// subscription: Terminated
}
