package sip

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sipua/sip/internal/transaction"
)

// TestMergedMapsShrink: after a burst, the merged-request maps are made
// anew once they hold an eighth of their peak, keeping what they hold, so
// that the heap of a finished burst is given back.
func TestMergedMapsShrink(t *testing.T) {
	c := &core{merged: map[mergeKey]*transaction.Server{}, mergedKeys: map[*transaction.Server]mergeKey{}}
	txs := make([]*transaction.Server, 2000)
	for i := range txs {
		txs[i] = new(transaction.Server)
		k := mergeKey{sum: [2]uint64{uint64(i)}}
		c.merged[k], c.mergedKeys[txs[i]] = txs[i], k
		c.mergedPeak = max(c.mergedPeak, len(c.mergedKeys))
	}
	for _, tx := range txs[:1800] {
		k := c.mergedKeys[tx]
		delete(c.mergedKeys, tx)
		delete(c.merged, k)
		c.shrinkMerged()
	}
	assert.Equal(t, 250, c.mergedPeak, "rebuilt when down to an eighth of the peak (250); too small to shrink again")
	assert.Len(t, c.merged, 200)
	for _, tx := range txs[1800:] {
		k, ok := c.mergedKeys[tx]
		assert.True(t, ok)
		assert.Same(t, tx, c.merged[k])
	}
	// Small maps are left alone.
	small := &core{merged: map[mergeKey]*transaction.Server{}, mergedKeys: map[*transaction.Server]mergeKey{}, mergedPeak: 100}
	small.shrinkMerged()
	assert.Equal(t, 100, small.mergedPeak)
}
