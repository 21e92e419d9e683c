package sip

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sipua/sip/internal/transaction"
)

// TestMergedMapsShrink: after a burst, the merged-request map is made
// anew once they hold an eighth of their peak, keeping what they hold, so
// that the heap of a finished burst is given back.
func TestMergedMapsShrink(t *testing.T) {
	c := &core{merged: map[mergeKey]*transaction.Server{}}
	txs := make([]*transaction.Server, 2000)
	for i := range txs {
		txs[i] = new(transaction.Server)
		k := mergeKey{uint64(i) + 1}
		c.merged[k] = txs[i]
		txs[i].SetTUKey(k)
		c.mergedPeak = max(c.mergedPeak, len(c.merged))
	}
	for _, tx := range txs[:1800] {
		delete(c.merged, tx.TUKey())
		c.shrinkMerged()
	}
	assert.Equal(t, 250, c.mergedPeak, "rebuilt when down to an eighth of the peak (250); too small to shrink again")
	assert.Len(t, c.merged, 200)
	for _, tx := range txs[1800:] {
		assert.Same(t, tx, c.merged[tx.TUKey()])
	}
	// Small maps are left alone.
	small := &core{merged: map[mergeKey]*transaction.Server{}, mergedPeak: 100}
	small.shrinkMerged()
	assert.Equal(t, 100, small.mergedPeak)
}
