package main

import (
	"flag"
	"fmt"
)

// parseFlags parses args with fs, flags and positional arguments in any
// order ("token revoke ID --postgres URI" as "token revoke --postgres URI
// ID"); a lone "--" ends the flags. It returns the positional arguments,
// and refuses more of them than max (none, for a command that takes
// none), naming the first one it did not expect.
func parseFlags(fs *flag.FlagSet, args []string, max int) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// flag.Parse stops at the first argument that is not a flag, and
		// after "--", which it consumes: what follows "--" is positional.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if len(positional) > max {
		return nil, usageError{fmt.Errorf("%s: unexpected argument %q (see \"undersigned-server %s -h\")", fs.Name(), positional[max], fs.Name())}
	}
	return positional, nil
}
