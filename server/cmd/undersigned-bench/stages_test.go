package main

import (
	"strings"
	"testing"
)

// TestStageMeans checks that the stage histograms are read from the
// server's metrics and averaged over the window between two reads.
func TestStageMeans(t *testing.T) {
	page := func(count, sum string) string {
		return `# HELP undersigned_ledger_write_stage_seconds x
# TYPE undersigned_ledger_write_stage_seconds histogram
undersigned_ledger_write_stage_seconds_bucket{stage="admit",le="+Inf"} ` + count + `
undersigned_ledger_write_stage_seconds_sum{stage="admit"} ` + sum + `
undersigned_ledger_write_stage_seconds_count{stage="admit"} ` + count + `
# HELP undersigned_trillian_step_leaves x
# TYPE undersigned_trillian_step_leaves histogram
undersigned_trillian_step_leaves_bucket{le="+Inf"} 2
undersigned_trillian_step_leaves_sum 300
undersigned_trillian_step_leaves_count 2
# HELP other_seconds x
# TYPE other_seconds histogram
other_seconds_bucket{le="+Inf"} 1
other_seconds_sum 1
other_seconds_count 1
`
	}
	before, err := parseStages(strings.NewReader(page("10", "1")))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseStages(strings.NewReader(page("30", "5")))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := after["other_seconds"]; ok {
		t.Error("a histogram that is not a stage was read")
	}
	got := stageMeans(before, after)
	if len(got) != 1 {
		t.Fatalf("stage means %+v, want only the admit stage (the leaves did not change)", got)
	}
	if m := got[0]; m.Series != "undersigned_ledger_write_stage_seconds/admit" || m.Count != 20 || m.Mean != 0.2 {
		t.Errorf("stage mean %+v, want 20 writes of 0.2 s", m)
	}
	if s := formatStages(got); !strings.Contains(s, "write_stage_seconds/admit") || !strings.Contains(s, "200.0 ms") {
		t.Errorf("formatted %q", s)
	}
}
