package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands returns the synopses in the first column of the README's
// command table, by command name ("letter publish", "import").
func readmeCommands(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "## The command line")
	if !ok {
		t.Fatal("README.md has no section \"The command line\"")
	}
	out := map[string]string{}
	span := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(strings.ReplaceAll(line, `\|`, "\x00"), "|", 3)[1]
		for _, m := range span.FindAllStringSubmatch(first, -1) {
			syn := strings.ReplaceAll(m[1], "\x00", "|")
			words := strings.Fields(syn)
			name := words[0]
			if name == "letter" && len(words) > 1 {
				name += " " + words[1]
			}
			if name == "letter organiser" && len(words) > 2 {
				name += " " + words[2]
			}
			out[name] = syn
		}
	}
	return out
}

func runOut(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	if err != nil {
		return exitCode(err), out.String(), errb.String() + message(err)
	}
	return 0, out.String(), errb.String()
}

// TestHelpMatchesTheREADME: problem 8 of issue 15. Every command's help
// exits 0 on -h, --help and "help CMD" alike, lists its own flags before
// the global ones, and its synopsis is the README's, whose flags exist.
func TestHelpMatchesTheREADME(t *testing.T) {
	readme := readmeCommands(t)
	var all []command
	for _, c := range commands {
		if c.name != "letter" {
			all = append(all, c)
		}
	}
	all = append(all, letterCommands...)
	for _, c := range all {
		t.Run(c.name, func(t *testing.T) {
			want := strings.TrimSpace(c.name + " " + c.args)
			if got, ok := readme[c.name]; !ok {
				t.Errorf("the README's table lacks %s", c.name)
			} else if got != want {
				t.Errorf("README: %q\ncode:   %q", got, want)
			}
			delete(readme, c.name)
			args := strings.Fields(c.name)
			code, help, errs := runOut(append(args, "--help")...)
			if code != 0 || errs != "" {
				t.Fatalf("--help: exit %d, stderr %q", code, errs)
			}
			for _, h := range []string{"-h", "-help"} {
				if code, out, _ := runOut(append(args, h)...); code != 0 || out != help {
					t.Errorf("%s: exit %d, or not what --help prints", h, code)
				}
			}
			if code, out, _ := runOut(append([]string{"help"}, args...)...); code != 0 || out != help {
				t.Errorf("help %s: exit %d, or not what --help prints:\n%s", c.name, code, out)
			}
			if !strings.HasPrefix(help, "usage: undersigned "+want+"\n") {
				t.Errorf("help does not start with the synopsis:\n%s", help)
			}
			for _, f := range regexp.MustCompile(`--[a-z-]+`).FindAllString(c.args, -1) {
				if !strings.Contains(help, "\n  "+f+" ") && !strings.Contains(help, "\n  "+f+"\n") {
					t.Errorf("the synopsis names %s, which the help does not list", f)
				}
			}
			own, global := strings.Index(help, "\nflags:\n"), strings.Index(help, "\nflags every command takes:\n")
			if global < 0 || (own >= 0 && own > global) {
				t.Errorf("the command's own flags do not come first:\n%s", help)
			}
		})
	}
	for name := range readme {
		t.Errorf("the README lists %s, which is not a command", name)
	}
	// The general help, and unknown commands.
	if code, out, _ := runOut("--help"); code != 0 || !strings.Contains(out, "import") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if code, _, _ := runOut("help"); code != 0 {
		t.Errorf("help: exit %d", code)
	}
	if code, _, errs := runOut("frobnicate"); code != exitUsage || !strings.Contains(errs, "undersigned help") {
		t.Errorf("an unknown command: exit %d, %q", code, errs)
	}
	if code, out, _ := runOut("letter", "-h"); code != 0 || !strings.Contains(out, "letter publish") {
		t.Errorf("letter -h: exit %d\n%s", code, out)
	}
	// Allowed values are in the help, not only after an error.
	if _, out, _ := runOut("withdraw", "--help"); !strings.Contains(out, "signer_request, not_signed, duplicate or organiser_error") {
		t.Errorf("withdraw --help does not list the reasons:\n%s", out)
	}
	if _, out, _ := runOut("redact", "--help"); !strings.Contains(out, "signer_request, safety or legal") {
		t.Errorf("redact --help does not list the reasons:\n%s", out)
	}
}
