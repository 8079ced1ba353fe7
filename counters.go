package mongotenant

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// leaseCounters counts the leases granted and released, for Stats, without
// a cache line that every core writes. Each P of the scheduler writes its
// own cell: a sync.Pool's per-P cache is the only per-P storage Go offers,
// so a cell is found through one, for about 5 ns. Counting per client or
// per tenant instead would make every tenant of a shared client write one
// line (a line moving between cores costs more than an uncontended Acquire
// and Release), or make Stats cost O(tenants).
type leaseCounters struct {
	cells []leaseCell
	next  atomic.Uint32 // hands cells to Ps round-robin
	pool  sync.Pool
}

// A leaseCell has a cache line of its own.
type leaseCell struct {
	hits     atomic.Uint64 // leases the hot path granted
	releases atomic.Uint64
	_        [48]byte
}

func newLeaseCounters() *leaseCounters {
	n := 1 << bits.Len(uint(4*runtime.GOMAXPROCS(0)-1))
	lc := &leaseCounters{cells: make([]leaseCell, n)}
	mask := uint32(n - 1)
	lc.pool.New = func() any { return &lc.cells[lc.next.Add(1)&mask] }
	return lc
}

// cell returns the calling P's cell, most likely. Two Ps may share one for
// a while after a GC empties the pool: that costs time, never counts.
func (lc *leaseCounters) cell() *leaseCell {
	c := lc.pool.Get().(*leaseCell)
	lc.pool.Put(c)
	return c
}

// sum reads the cells: releases first, so that every release counted has
// its grant counted too.
func (lc *leaseCounters) sum() (hits, releases uint64) {
	for i := range lc.cells {
		releases += lc.cells[i].releases.Load()
	}
	for i := range lc.cells {
		hits += lc.cells[i].hits.Load()
	}
	return hits, releases
}
