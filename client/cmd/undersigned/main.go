// Command undersigned is the command line of undersigned: organisers
// publish letters and import signatures, signers keep and check their
// receipts, anyone can read a letter's roster, and auditors mirror and
// verify the whole log, compare a published list with it, and deliver a
// letter with its roster.
//
// Run "undersigned help" for the commands. Exit codes: 0 success; 1 a
// verification failed, a violation was found or rows were rejected; 2 a
// usage or connection error; 3 refused by the server (not authenticated,
// not permitted, rate-limited, closed, not found, invalid).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitRefused  = 3
	defaultAddr  = "127.0.0.1:7420"
	envServer    = "UNDERSIGNED_SERVER"
	envTokenFile = "UNDERSIGNED_TOKEN_FILE"
	envConfigDir = "UNDERSIGNED_CONFIG_DIR"
)

// exitError carries an exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func failedf(format string, args ...any) error {
	return &exitError{exitFailed, fmt.Errorf(format, args...)}
}

// exitCode maps an error to the exit codes of the command line: 3 when the
// server refused the command, 1 when a check failed, 2 for usage and
// connection errors.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, receipt.ErrVerification) || errors.Is(err, receipt.ErrMalformed) || errors.Is(err, client.ErrKeyChanged) || errors.Is(err, client.ErrWrongLogKey) {
		return exitFailed
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted,
			codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.NotFound, codes.OutOfRange:
			return exitRefused
		}
		return exitUsage
	}
	return exitUsage
}

// message turns an error into one line for people, saying what to do next
// where the code says enough.
func message(err error) string {
	if errors.Is(err, client.ErrWrongLogKey) {
		return err.Error() + ": check that --log-key names this log's verifier key (its log.pub)"
	}
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	code := strings.ToLower(strings.ReplaceAll(st.Code().String(), "_", " "))
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Sprintf("cannot reach the server (%s): check --server (env %s) and that it runs; a receipt verifies without it: undersigned verify --offline --log-key log.pub RECEIPT", code, envServer)
	case codes.Unauthenticated:
		return fmt.Sprintf("server refused (%s): %s; give an organiser token with --token-file (env %s)", code, st.Message(), envTokenFile)
	case codes.PermissionDenied:
		return fmt.Sprintf("server refused (%s): %s; ask the server's operator for a token for this letter", code, st.Message())
	case codes.ResourceExhausted:
		return fmt.Sprintf("server refused (%s): %s; wait a little and run the command again", code, st.Message())
	}
	return fmt.Sprintf("server refused (%s): %s", code, st.Message())
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "undersigned:", message(err))
		os.Exit(exitCode(err))
	}
}

// globals are the flags every command takes.
type globals struct {
	server       string
	tokenFile    string
	organiserKey string
	configDir    string
	tlsCA        string
	tlsServer    string
	tlsCert      string
	tlsKey       string
	// serverSet reports that the server was named (flag or environment),
	// not defaulted.
	serverSet bool
}

// defaultGlobals returns the globals' values before any flag: from the
// environment, or built in.
func defaultGlobals() globals {
	return globals{
		server:    envOr(envServer, defaultAddr),
		serverSet: os.Getenv(envServer) != "",
		tokenFile: os.Getenv(envTokenFile),
		configDir: os.Getenv(envConfigDir),
	}
}

// register adds the global flags to fs, with the values already set as
// defaults, so that they can come before or after the command.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "the server's gRPC address (env "+envServer+")")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "a file holding an organiser token (env "+envTokenFile+")")
	fs.StringVar(&g.organiserKey, "organiser-key", g.organiserKey, "the organiser key file (default: organiser.key in the config folder, created on first use)")
	fs.StringVar(&g.configDir, "config-dir", g.configDir, "the folder of known_logs and the default organiser key (env "+envConfigDir+")")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "dial with TLS, trusting this CA certificate file (PEM); default: plaintext")
	fs.StringVar(&g.tlsServer, "tls-server-name", g.tlsServer, "with --tls-ca: the server name to expect")
	fs.StringVar(&g.tlsCert, "tls-cert", g.tlsCert, "with --tls-ca: a client certificate (PEM), for servers that want organisers to present one")
	fs.StringVar(&g.tlsKey, "tls-key", g.tlsKey, "with --tls-cert: its private key (PEM)")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type command struct {
	name, args, help string
	run              func(ctx context.Context, e *env, args []string) error
}

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	g              globals
}

var commands []command

// letterCommands are the subcommands of letter, for help.
var letterCommands = []command{
	{name: "letter publish", args: "--id ID --title T --text FILE [--policy curated|open] [--organiser FILE]...", help: "publish a letter (listing co-organisers' keys beside yours)"},
	{name: "letter close", args: "ID", help: "close a letter: no more endorsements"},
	{name: "letter delivered", args: "ID --note TEXT", help: "record a letter's delivery"},
	{name: "letter organiser key", args: "[--out FILE]", help: "write the public key of your organiser key (created if you have none), to give to a letter's organisers"},
	{name: "letter organiser list", args: "--letter ID", help: "the organiser keys of a letter, valid and revoked, by fingerprint"},
	{name: "letter organiser add", args: "--letter ID --key FILE", help: "list another organiser's key in a letter: it may sign for the letter from now on"},
	{name: "letter organiser revoke", args: "--letter ID (--key FILE | --fingerprint FP)", help: "revoke an organiser key of a letter: it signs nothing for the letter from now on"},
}

func init() {
	commands = []command{
		{"letter", "publish|close|delivered|organiser ...", "publish a letter, close it, record its delivery, or change its organiser keys", runLetter},
		{"endorse", "--letter ID --name N [--affiliation A] [--country C] [--private] [--key FILE] [--receipt FILE] [--readd-after-redaction]", "append one endorsement and write its receipt", runEndorse},
		{"import", "--letter ID --csv FILE [--receipts DIR] [--column FIELD=HEADER] [--ignore HEADER] [--encoding E] [--name-order first-last|last-first] [--dry-run] [--receipt-names index|name] [--pages html,pdf] [--email-column HEADER --smtp HOST:PORT --smtp-from ADDR]", "append the endorsements of a CSV file, one receipt per row", runImport},
		{"keygen", "--out FILE", "create a signer key", runKeygen},
		{"log", "", "print the log's origin, verifier key, engine and size", runLog},
		{"verify", "RECEIPT... [--offline] [--log-key FILE] [--policy FILE] [--require-counted] [--disclosure FILE]", "verify receipts (and their witnesses' cosignatures, with a policy)", runVerify},
		{"withdraw", "(--receipt FILE | --index N) [--reason R] [--redact]", "withdraw an endorsement (and redact its name)", runWithdraw},
		{"redact", "(--receipt FILE | --index N) [--reason R]", "redact an endorsement's name", runRedact},
		{"roster", "--letter ID [--at SIZE] [--offline|--state DIR] [--format csv|json] [--history]", "print a letter's roster", runRoster},
		{"audit", "[--state DIR] [--tiles URL] [--log-key FILE] [--policy FILE] [--checkpoint FILE] [--report FILE]", "verify the whole log since the last audit; print what changed", runAudit},
		{"changes", "--letter ID (--from SIZE [--to SIZE] | --after DATE)", "every record that changed a letter's roster (from the audit state)", runChanges},
		{"diff", "--letter ID --published FILE [--offline]", "compare a published list of names with the roster", runDiff},
		{"deliver", "--letter ID --out DIR", "write a delivery bundle for the addressee (from the audit state)", runDeliver},
		{"monitor", "[--interval D] [--state DIR] [--tiles URL] [--policy FILE] [--compare URL]...", "audit again and again, and compare with mirrors and witnesses; one line per new checkpoint", runMonitor},
	}
}

// findCommand returns the command or letter subcommand called name.
func findCommand(name string) (command, bool) {
	for _, c := range append(append([]command{}, commands...), letterCommands...) {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: undersigned COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		if c.name == "letter" {
			for _, l := range letterCommands {
				fmt.Fprintf(w, "  %s %s\n            %s\n", l.name, l.args, l.help)
			}
			continue
		}
		fmt.Fprintf(w, "  %s %s\n            %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command also takes --server, --token-file, --organiser-key, --config-dir and the TLS flags.")
	fmt.Fprintln(w, "\"undersigned help COMMAND\" or \"undersigned COMMAND --help\" describes a command and its flags.")
	fmt.Fprintln(w, "Exit codes: 0 success; 1 verification failed, a violation found or rows rejected; 2 usage or connection error;")
	fmt.Fprintln(w, "3 refused by the server (not authenticated, not permitted, rate-limited, closed, not found, invalid).")
}

// errHelpShown is returned after help was printed on request: exit 0.
var errHelpShown = errors.New("help shown")

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &env{stdout: stdout, stderr: stderr, g: defaultGlobals()}
	// Global flags may come before the command.
	pre := flag.NewFlagSet("undersigned", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	pre.Usage = func() {}
	e.g.register(pre)
	if err := pre.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return nil
		}
		return usagef("%v (see undersigned help)", err)
	}
	pre.Visit(func(f *flag.Flag) { e.g.serverSet = e.g.serverSet || f.Name == "server" })
	args = pre.Args()
	if len(args) == 0 {
		usage(stderr)
		return usagef("no command (see undersigned help)")
	}
	if isHelp(args[0]) {
		if len(args) == 1 {
			usage(stdout)
			return nil
		}
		// "help CMD" prints exactly what "CMD --help" prints.
		return dispatch(ctx, append(append([]string{}, args[1:]...), "--help"), stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return usagef("unknown command %q (see undersigned help)", args[0])
}

// parse parses flags and positional arguments in any order. On -h or
// --help it prints the command's help to stdout and returns errHelpShown.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	e.g.register(fs)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(e.stdout, fs, own)
				return nil, errHelpShown
			}
			return nil, usagef("%s: %v (see undersigned %s --help)", fs.Name(), err, fs.Name())
		}
		fs.Visit(func(f *flag.Flag) { e.g.serverSet = e.g.serverSet || f.Name == "server" })
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// printHelp prints a command's synopsis, what it does, its own flags and
// then the flags every command takes.
func printHelp(w io.Writer, fs *flag.FlagSet, own map[string]bool) {
	c, _ := findCommand(fs.Name())
	fmt.Fprintf(w, "usage: undersigned %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	section := func(title string, mine bool) {
		fmt.Fprintf(w, "\n%s:\n", title)
		fs.VisitAll(func(f *flag.Flag) {
			if own[f.Name] != mine {
				return
			}
			value, text := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s", f.Name)
			if value != "" {
				fmt.Fprintf(w, " %s", value)
			}
			fmt.Fprintf(w, "\n      %s", text)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(text, "default") {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	if len(own) > 0 {
		section("flags", true)
	}
	section("flags every command takes", false)
}

func (e *env) configDir() (string, error) {
	if e.g.configDir != "" {
		return e.g.configDir, nil
	}
	return client.DefaultConfigDir()
}

func (e *env) knownLogs() (string, error) {
	d, err := e.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "known_logs"), nil
}
