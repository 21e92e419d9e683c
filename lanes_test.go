package sip

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestLaneWorkersEndWhenIdle: the workers that ran a burst of lanes wait
// for more, are handed the next lanes (no new goroutine), and end between
// workerIdle and twice that after their last lane, without Stop: the
// bubble ends only when every goroutine in it has.
func TestLaneWorkersEndWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l lanes
		idle := func() int {
			l.lock()
			defer l.mu.Unlock()
			return len(l.idle)
		}
		var wg sync.WaitGroup
		release := make(chan struct{})
		for range 20 {
			q := &callbackQueue{set: &l}
			wg.Add(1)
			q.push(func() { <-release; wg.Done() })
		}
		close(release)
		wg.Wait()
		synctest.Wait()
		assert.Equal(t, 20, idle(), "every worker waits for the next lane")

		// A lane now runs on a waiting worker, which then waits again.
		time.Sleep(workerIdle * 3 / 2)
		var ids []int64
		for range 3 {
			q := &callbackQueue{set: &l}
			done := make(chan int64)
			q.push(func() { done <- goid() })
			ids = append(ids, <-done)
			synctest.Wait()
		}
		assert.Equal(t, ids[0], ids[1], "the last worker to wait is handed the next lane")
		assert.Equal(t, ids[1], ids[2])
		assert.Equal(t, 20, idle())

		// The 19 that ran nothing since are gone 2·workerIdle after the
		// burst; the one that ran the later lanes is not yet.
		time.Sleep(workerIdle/2 + time.Millisecond)
		synctest.Wait()
		assert.Equal(t, 1, idle())
		time.Sleep(2 * workerIdle)
		synctest.Wait()
		assert.Zero(t, idle(), "no worker waits on an idle UserAgent")
	})
}
