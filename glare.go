package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultGlareRetries is how many times a request refused with 491 is
// sent again when ReinviteOptions.GlareRetries is zero.
const DefaultGlareRetries = 3

// ErrGlare reports a re-INVITE (or other offer) still refused with 491
// Request Pending after its retries: the peer kept sending its own.
var ErrGlare = errors.New("sip: request glare persisted")

// glareDelay returns how long to wait before sending again a request
// refused with 491 (RFC 3261 §14.1), in units of 10 ms: 2.1–4 s for the
// side that owns the dialog's Call-ID (its UAC, the caller), 0–2 s for
// the other.
func glareDelay(owner bool) time.Duration {
	if owner {
		return 2100*time.Millisecond + time.Duration(rand.IntN(191))*10*time.Millisecond
	}
	return time.Duration(rand.IntN(201)) * 10 * time.Millisecond
}

// isGlare reports an error that is a 491 response.
func isGlare(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.StatusCode == 491
}

// retryGlare runs attempt, and again after the glare delay each time it
// fails with 491, at most retries times (0: DefaultGlareRetries,
// negative: none). Any request that can cross the peer's (re-INVITE,
// UPDATE) goes through it. It runs off the loop and waits with ctx.
func (s *Session) retryGlare(ctx context.Context, retries int, attempt func() error) error {
	if retries == 0 {
		retries = DefaultGlareRetries
	}
	owner := !s.incoming // the caller generated the Call-ID
	for n := 0; ; n++ {
		err := attempt()
		if !isGlare(err) {
			return err
		}
		if retries < 0 || n >= retries {
			if retries < 0 {
				return err
			}
			return fmt.Errorf("%w: 491 after %d retries: %w", ErrGlare, n, err)
		}
		d := glareDelay(owner)
		s.ua.log.Debug("sip: glare, sending again", "delay", d, "attempt", n+1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return canceled(ctx)
		case <-s.doneChan():
			t.Stop()
			return err
		case <-s.ua.quit:
			t.Stop()
			return ErrStopped
		}
	}
}
