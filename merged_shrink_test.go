package sip

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMergedMapsShrink: after a burst, the merged-request map is made
// anew once they hold an eighth of their peak, keeping what they hold, so
// that the heap of a finished burst is given back.
func TestMergedMapsShrink(t *testing.T) {
	c := &core{merged: map[mergeKey]struct{}{}}
	keys := make([]mergeKey, 2000)
	for i := range keys {
		keys[i] = mergeKey{uint64(i) + 1}
		c.merged[keys[i]] = struct{}{}
		c.mergedPeak = max(c.mergedPeak, len(c.merged))
	}
	for _, k := range keys[:1800] {
		c.forgetMerged(k)
	}
	assert.Equal(t, 250, c.mergedPeak, "rebuilt when down to an eighth of the peak (250); too small to shrink again")
	assert.Len(t, c.merged, 200)
	for _, k := range keys[1800:] {
		assert.Contains(t, c.merged, k)
	}
	c.forgetMerged(mergeKey{})
	assert.Len(t, c.merged, 200, "the zero key is no request's")
	// Small maps are left alone.
	small := &core{merged: map[mergeKey]struct{}{}, mergedPeak: 100}
	small.shrinkMerged()
	assert.Equal(t, 100, small.mergedPeak)
}
