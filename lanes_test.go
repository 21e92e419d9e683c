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

// collect makes an inline run of n lanes of l, the way a reader collects
// the lanes its work in place starts; f(i) is lane i's callback.
func collect(t *testing.T, l *lanes, n int, f func(i int)) *inlineRun {
	t.Helper()
	il := l.inline
	il.begin()
	for i := range n {
		q := &callbackQueue{set: l}
		q.push(func() { f(i) })
	}
	run := il.end()
	if run == nil || len(run.lanes) != n {
		t.Fatalf("collected %v", run)
	}
	return run
}

// TestInlineRunRelieve: the lanes a reader collected run on it one after
// the other; when it is relieved (its first callback blocks), the lanes
// it has not started run on workers meanwhile.
func TestInlineRunRelieve(t *testing.T) {
	l := &lanes{inline: &inlineLanes{}}
	release := make(chan struct{})
	ran := make(chan int, 3)
	run := collect(t, l, 3, func(i int) {
		if i == 0 {
			<-release
		}
		ran <- i
	})
	done := make(chan struct{})
	go func() { run.Run(1); close(done) }()
	select {
	case i := <-ran:
		t.Fatalf("lane %d ran behind the blocked one", i)
	case <-time.After(20 * time.Millisecond):
	}
	run.Relieve()
	got := []int{<-ran, <-ran}
	assert.ElementsMatch(t, []int{1, 2}, got, "the others ran on workers")
	close(release)
	assert.Equal(t, 0, <-ran)
	<-done
	l.wait()
	l.close()
}

// TestInlineRunStop: a callback run by a reader that calls Stop (which
// waits for every lane but those inside Stop) does not wait for the
// lanes collected behind it: they go to workers.
func TestInlineRunStop(t *testing.T) {
	l := &lanes{inline: &inlineLanes{}}
	ran := make(chan int, 2)
	waited := make(chan struct{})
	run := collect(t, l, 2, func(i int) {
		if i == 0 {
			leave := l.enterStop()
			l.wait() // as Stop does
			leave()
			close(waited)
		}
		ran <- i
	})
	go run.Run(7)
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop from the first lane waits for the second for ever")
	}
	assert.ElementsMatch(t, []int{0, 1}, []int{<-ran, <-ran})
	l.wait()
	l.close()
}
