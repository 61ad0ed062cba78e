// Command fobgw turns a Linux board into a WireGuard "FOB" router: every
// client on its LAN reaches the internet through a tunnel to the home
// router, while the board's own traffic keeps the local ISP.
//
// Usage: see `fobgw help` (the text of usage below).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/gateway"
	"github.com/fobgw/fobgw/internal/buildinfo"
)

const usage = `fobgw: a userspace WireGuard gateway for a FOB network

Usage:
  fobgw run -config FILE [-v]    run in the foreground until SIGINT/SIGTERM (systemd Type=notify)
  fobgw check -config FILE       validate; print the routes, rules, sysctls and listeners run would set
  fobgw status [-json] [-name NAME | -config FILE]
                                 tunnel, handshake age, endpoint, bytes, clamp and DNS counters
  fobgw down -config FILE        remove every rule, route and NAT table fobgw installed (the kill switch too)
  fobgw portal open -config FILE DEVICE [-for 10m]
                                 let one device (LAN address or MAC) out directly to log in to a captive
                                 portal, at most 30m; it closes at the first handshake with home
  fobgw portal close [-name NAME | -config FILE]
                                 close that window now
  fobgw genkey                   print a new private key (as wg genkey)
  fobgw pubkey                   read a private key on stdin, print its public key (as wg pubkey)
  fobgw home-config -config FILE -format routeros|wg-quick
                                 the home router's side for this FOB, with the LAN in its allowed addresses
  fobgw version                  fobgw's version and commit, wireguard-go's version, the Go version
  fobgw bench [-seconds N] [-json]
                                 measure fobgw's tunnel on this machine, as any user: two WireGuard
                                 devices in this process over loopback UDP, beside the hAP lite's figures
  fobgw help                     this text

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.

Memory: fobgw run sets a soft memory limit (runtime/debug.SetMemoryLimit):
three quarters of its cgroup's memory limit when it runs under one (systemd's
MemoryMax=, cgroup v1 or v2), otherwise 48 MiB, what it was measured to need.
The GOMEMLIMIT environment variable wins (GOMEMLIMIT=off for none). GOGC is
50 unless the environment sets it: most of the live heap is packet buffers kept
for the whole run. The limit is logged at start as memory_limit.
`

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "down":
		err = cmdDown(rest, stderr)
	case "portal":
		err = cmdPortal(rest, stdout, stderr)
	case "genkey":
		err = cmdGenkey(rest, stdout)
	case "pubkey":
		err = cmdPubkey(rest, stdin, stdout)
	case "home-config":
		err = cmdHomeConfig(rest, stdout, stderr)
	case "version":
		err = cmdVersion(rest, stdout)
	case "bench":
		err = cmdBench(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "fobgw: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "fobgw %s: %v\n", cmd, err)
	var ue *usageError
	var ce *config.ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitUsage
	}
	return exitRuntime
}

// newFlags returns a FlagSet that reports errors as usageError.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fobgw "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q; see `fobgw help`", fs.Arg(0))}
	}
	return nil
}

func needConfig(path string) error {
	if path == "" {
		return &usageError{msg: "missing -config FILE (e.g. -config /etc/fobgw/fobgw.conf)"}
	}
	return nil
}

// newLogger returns the logger of run and down, writing text lines to w.
// When w is the journal (systemd's JOURNAL_STREAM names its device and
// inode), lines carry no time (the journal stamps them) and start with their
// syslog priority as sd-daemon(3) prefixes, so that `journalctl -p warning`
// picks out warnings and errors; anywhere else they stay plain.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if !isJournal(os.Getenv("JOURNAL_STREAM"), w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	jw := &journalWriter{w: w}
	return slog.New(&journalHandler{Handler: slog.NewTextHandler(jw, opts), out: jw})
}

// loadConfig parses fs's flags from args and loads the -config file they
// name (cfgFile points at the flag's value).
func loadConfig(fs *flag.FlagSet, args []string, cfgFile *string) (*config.Config, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := needConfig(*cfgFile); err != nil {
		return nil, err
	}
	return config.LoadConfig(*cfgFile, config.LoadOptions{})
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	cfgFile := fs.String("config", "", "configuration `FILE`")
	verbose := fs.Bool("v", false, "log debug messages")
	cfg, err := loadConfig(fs, args, cfgFile)
	if err != nil {
		return err
	}
	log := newLogger(stderr, *verbose)
	limit, source := applyMemoryLimit(os.Getenv, cgroupMemoryLimit("/"))
	applyGCPercent(os.Getenv)
	if limit == math.MaxInt64 {
		log.Info("memory limit", "memory_limit", "off", "source", source)
	} else {
		log.Info("memory limit", "memory_limit_mib", limit>>20, "source", source)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ready := func() {
		if n, err := releaseStartupPages(); err != nil {
			log.Warn("could not release the binary's start-up pages; fobgw runs on with them", "err", err)
		} else {
			log.Debug("released the binary's start-up pages", "mapped_mib", n>>20)
		}
	}
	return gateway.Run(ctx, cfg, gateway.Options{Logger: log, OnReady: ready})
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	cfgFile := fs.String("config", "", "configuration `FILE`")
	cfg, err := loadConfig(fs, args, cfgFile)
	if err != nil {
		return err
	}
	return gateway.Check(cfg, gateway.Options{}, stdout)
}

func cmdDown(args []string, stderr io.Writer) error {
	fs := newFlags("down", stderr)
	cfgFile := fs.String("config", "", "configuration `FILE`")
	verbose := fs.Bool("v", false, "log debug messages")
	cfg, err := loadConfig(fs, args, cfgFile)
	if err != nil {
		return err
	}
	return gateway.Down(cfg, gateway.Options{Logger: newLogger(stderr, *verbose)})
}

// nameFlags adds -name and -config to fs; the function it returns, called
// after parsing, is the gateway's interface name: the Name of the -config
// file when one is given, else -name.
func nameFlags(fs *flag.FlagSet) func() (string, error) {
	name := fs.String("name", config.DefaultName, "the gateway's interface `NAME`")
	cfgFile := fs.String("config", "", "take the name from this configuration `FILE`")
	return func() (string, error) {
		if *cfgFile == "" {
			return *name, nil
		}
		cfg, err := readConfig(*cfgFile)
		if err != nil {
			return "", err
		}
		return cfg.Name, nil
	}
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	gwName := nameFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := gwName()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := gateway.ReadStatus(ctx, gateway.ControlSocket("", n))
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, st)
	}
	return st.WriteText(stdout)
}

func cmdGenkey(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return &usageError{msg: "genkey takes no arguments"}
	}
	k, err := config.GenerateKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, k.String())
	return err
}

func cmdPubkey(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		return &usageError{msg: "pubkey takes no arguments; it reads the private key on stdin"}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("read the private key from stdin: %w", err)
	}
	k, err := config.ParseKey(strings.TrimSpace(line))
	if err != nil {
		return &usageError{msg: "Key is not the correct length or format: " + err.Error()}
	}
	_, err = fmt.Fprintln(stdout, k.PublicKey().String())
	return err
}

func cmdHomeConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("home-config", stderr)
	cfgFile := fs.String("config", "", "configuration `FILE`")
	format := fs.String("format", gateway.FormatRouterOS, "output format: routeros or wg-quick")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := needConfig(*cfgFile); err != nil {
		return err
	}
	if *format != gateway.FormatRouterOS && *format != gateway.FormatWGQuick {
		return &usageError{msg: fmt.Sprintf("unknown -format %q: use routeros or wg-quick", *format)}
	}
	cfg, err := config.LoadConfig(*cfgFile, config.LoadOptions{})
	if err != nil {
		return err
	}
	return gateway.HomeConfig(cfg, *format, stdout)
}

func cmdVersion(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return &usageError{msg: "version takes no arguments"}
	}
	return buildinfo.Read().Write(stdout)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
