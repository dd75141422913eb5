// Command undersigned is the command line of undersigned: organisers
// publish letters and import signatures, signers keep and check their
// receipts, anyone can read a letter's roster, and auditors mirror and
// verify the whole log, compare a published list with it, and deliver a
// letter with its roster.
//
// Run "undersigned help" for the commands. Exit codes: 0 success; 1 a
// verification failed, a violation was found or rows were rejected; 2 a
// usage or connection error; 3 refused by the server (not authenticated,
// not permitted, rate-limited).
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

// exitCode maps an error to the exit codes of the command line.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, receipt.ErrVerification) || errors.Is(err, receipt.ErrMalformed) || errors.Is(err, client.ErrKeyChanged) {
		return exitFailed
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
			return exitRefused
		case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.NotFound, codes.OutOfRange:
			return exitFailed
		}
		return exitUsage
	}
	return exitUsage
}

// message turns an error into one line for people.
func message(err error) string {
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("server refused (%s): %s", strings.ToLower(strings.ReplaceAll(st.Code().String(), "_", " ")), st.Message())
	}
	return err.Error()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "undersigned:", message(err))
			os.Exit(exitCode(err))
		}
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
}

// defaultGlobals returns the globals' values before any flag: from the
// environment, or built in.
func defaultGlobals() globals {
	return globals{
		server:    envOr(envServer, defaultAddr),
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

func init() {
	commands = []command{
		{"letter", "publish|close|delivered ...", "publish a letter, close it, or record its delivery", runLetter},
		{"endorse", "--letter ID --name N [flags]", "append one endorsement and write its receipt", runEndorse},
		{"import", "--letter ID --csv FILE [--receipts DIR]", "append the endorsements of a CSV file, one receipt per row", runImport},
		{"keygen", "--out FILE", "create a signer key", runKeygen},
		{"log", "", "print the log's origin, verifier key, engine and size", runLog},
		{"verify", "RECEIPT... [--offline] [--log-key FILE] [--policy FILE] [--require-counted]", "verify receipts (and their witnesses' cosignatures, with a policy)", runVerify},
		{"withdraw", "(--receipt FILE | --index N) [--reason R]", "withdraw an endorsement", runWithdraw},
		{"redact", "(--receipt FILE | --index N) [--reason R]", "redact an endorsement's name", runRedact},
		{"roster", "--letter ID [--at SIZE] [--offline|--state DIR] [--format csv|json]", "print a letter's roster", runRoster},
		{"audit", "[--state DIR] [--tiles URL] [--log-key FILE] [--policy FILE] [--checkpoint FILE]", "verify the whole log since the last audit; print what changed", runAudit},
		{"changes", "--letter ID (--from SIZE [--to SIZE] | --after RFC3339)", "every record that changed a letter's roster (from the audit state)", runChanges},
		{"diff", "--letter ID --published FILE [--offline]", "compare a published list of names with the roster", runDiff},
		{"deliver", "--letter ID --out DIR", "write a delivery bundle for the addressee (from the audit state)", runDeliver},
		{"monitor", "[--interval D] [--state DIR] [--tiles URL] [--policy FILE] [--compare URL]...", "audit again and again, and compare with mirrors and witnesses; one line per new checkpoint", runMonitor},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: undersigned COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n            %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --server, --token-file, --organiser-key, --config-dir and the TLS flags.")
	fmt.Fprintln(w, "\"undersigned COMMAND -h\" lists a command's flags.")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &env{stdout: stdout, stderr: stderr, g: defaultGlobals()}
	// Global flags may come before the command.
	pre := flag.NewFlagSet("undersigned", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	e.g.register(pre)
	if err := pre.Parse(args); err != nil {
		usage(stderr)
		return usagef("%v", err)
	}
	args = pre.Args()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return usagef("no command")
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	usage(stderr)
	return usagef("unknown command %q", args[0])
}

// parse parses flags and positional arguments in any order.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	e.g.register(fs)
	fs.SetOutput(e.stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
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
