package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// benchMemory measures the server's resident memory, empty and holding
// --memory-entries entries, and how long a clean restart with that many
// entries takes until the server answers.
func benchMemory(ctx context.Context, o options, res *results) error {
	dir := filepath.Join(o.dir, "memory")
	// With --cpuprofile, the heap's profiles of the empty and the full
	// server go to FILE.memory.heap0 and FILE.memory.heap.
	var extra []string
	if o.cpuProfile != "" {
		extra = []string{"--cpuprofile", o.cpuProfile + ".memory"}
	}
	srv, err := startChild(ctx, o, dir, extra...)
	if err != nil {
		return err
	}
	// Warm the empty server up with a few writes so that its baseline
	// includes what any serving process holds.
	if _, err := fill(ctx, srv, 100, 0); err != nil {
		srv.stop()
		return err
	}
	time.Sleep(2 * time.Second)
	empty := srv.rss()
	srv.profile(true)
	fmt.Fprintf(os.Stderr, "empty server: RSS %.1f MiB; filling %d endorsements\n", float64(empty)/(1<<20), o.memoryEntries)
	start := time.Now()
	if _, err := fill(ctx, srv, o.memoryEntries, 0); err != nil {
		srv.stop()
		return err
	}
	fillTime := time.Since(start)
	time.Sleep(2 * time.Second)
	full := srv.rss()
	srv.profile(false)
	time.Sleep(500 * time.Millisecond) // the profile's writing
	if err := srv.stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	var restarts []time.Duration
	var restarted int64
	for range o.runs {
		t0 := time.Now()
		srv, err = startChild(ctx, o, dir)
		if err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		restarts = append(restarts, time.Since(t0))
		restarted = srv.rss()
		if err := srv.stop(); err != nil {
			return err
		}
	}
	perEntry := float64(full-empty) / float64(o.memoryEntries)
	res.Extra["memory_empty_rss_mib"] = fmt.Sprintf("%.1f", float64(empty)/(1<<20))
	res.Extra["memory_full_rss_mib"] = fmt.Sprintf("%.1f", float64(full)/(1<<20))
	res.Extra["memory_bytes_per_entry"] = fmt.Sprintf("%.1f", perEntry)
	res.Extra["memory_entries"] = o.memoryEntries
	res.Extra["memory_fill_rate_per_s"] = fmt.Sprintf("%.0f", float64(o.memoryEntries)/fillTime.Seconds())
	res.Extra["restart_times"] = fmt.Sprint(restarts)
	res.Extra["restart_rss_mib"] = fmt.Sprintf("%.1f", float64(restarted)/(1<<20))
	return nil
}
