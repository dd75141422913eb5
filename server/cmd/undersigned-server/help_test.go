package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestHelp: "undersigned-server --help" lists the subcommands (it showed
// only serve's flags, and exited 2), and each subcommand's -h exits 0.
func TestHelp(t *testing.T) {
	var b bytes.Buffer
	usage(&b)
	for _, c := range []string{"serve", "token", "fsck", "backup", "restore", "migrate", "unmigrate", "recover", "create-tree", "health"} {
		if !strings.Contains(b.String(), "  "+c+" ") {
			t.Errorf("the help does not list %s:\n%s", c, b.String())
		}
	}
	if err := run(context.Background(), []string{"--help"}, nil); err != nil {
		t.Errorf("--help: %v", err)
	}
	for _, c := range []string{"serve", "token", "fsck", "backup", "restore", "migrate", "unmigrate", "recover", "create-tree", "health"} {
		if err := run(context.Background(), []string{c, "-h"}, nil); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h: %v, want flag.ErrHelp (exit 0)", c, err)
		}
		if err := run(context.Background(), []string{"help", c}, nil); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("help %s: %v, want flag.ErrHelp (exit 0)", c, err)
		}
	}
}
