package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/gateway"
	"github.com/fobgw/fobgw/portal"
)

// cmdPortal is `fobgw portal open|close`: the window for one device to log
// in to a captive portal.
func cmdPortal(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: "portal needs open or close: fobgw portal open -config FILE DEVICE [-for 10m], fobgw portal close [-config FILE]"}
	}
	switch args[0] {
	case "open":
		return cmdPortalOpen(args[1:], stdout, stderr)
	case "close":
		return cmdPortalClose(args[1:], stdout, stderr)
	}
	return &usageError{msg: fmt.Sprintf("unknown portal command %q: use open or close", args[0])}
}

func cmdPortalOpen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("portal open", stderr)
	cfgFile := fs.String("config", "", "configuration `FILE` (its LAN and Name)")
	length := fs.Duration("for", portal.DefaultWindow, fmt.Sprintf("how long the window stays open at most, up to %v", portal.MaxWindow))
	// DEVICE may come before or after the flags.
	var device string
	if err := parseInterleaved(fs, args, &device); err != nil {
		return err
	}
	if err := needConfig(*cfgFile); err != nil {
		return err
	}
	if device == "" {
		return &usageError{msg: "missing DEVICE: the LAN address or MAC address of the device that logs in, e.g. fobgw portal open -config FILE 192.168.86.50"}
	}
	cfg, err := readConfig(*cfgFile)
	if err != nil {
		return err
	}
	if !cfg.PortalCheck.On() {
		return &usageError{msg: fmt.Sprintf("%s: PortalCheck = off: captive portal windows are off; remove the line (or set a check URL) and restart fobgw", cfg.File)}
	}
	if _, err := portal.ParseDevice(device, cfg.LAN); err != nil {
		return &usageError{msg: fmt.Sprintf("device %q: %v", device, err)}
	}
	if err := portal.CheckLength(*length); err != nil {
		return &usageError{msg: fmt.Sprintf("-for: %v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := gateway.PortalOpen(ctx, gateway.ControlSocket("", cfg.Name), device, *length)
	if err != nil {
		return err
	}
	w := r.Window
	fmt.Fprintf(stdout, "window open for %v until %s: it alone goes out directly, without the tunnel; the rest of the LAN keeps the kill switch.\n", w.Device, w.Until.Format(time.TimeOnly))
	fmt.Fprintln(stdout, "It closes at the first handshake with home after the login, at its end, or with: fobgw portal close")
	if r.Detected {
		fmt.Fprintf(stdout, "Log in at the portal's page from that device: %s\n", r.URL)
	} else {
		fmt.Fprintln(stdout, "No captive portal is detected now (the tunnel may be up, or the check got no answer); the window is open all the same.")
	}
	return nil
}

func cmdPortalClose(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("portal close", stderr)
	gwName := nameFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := gwName()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := gateway.PortalClose(ctx, gateway.ControlSocket("", n))
	if err != nil {
		return err
	}
	if !r.Done {
		fmt.Fprintln(stdout, "no window was open")
		return nil
	}
	fmt.Fprintf(stdout, "window for %v closed: it goes home again\n", r.Window.Device)
	return nil
}

// readConfig parses the configuration file for its names and LAN, without
// LoadConfig's key file checks: these commands only talk to the running
// gateway.
func readConfig(path string) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("read %s: %v", path, err)}
	}
	return config.ParseConfig(path, data)
}

// parseInterleaved parses fs's flags before and after one positional
// argument, stored in *arg; a second one is an error.
func parseInterleaved(fs *flag.FlagSet, args []string, arg *string) error {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return &usageError{msg: err.Error()}
		}
		if fs.NArg() == 0 {
			return nil
		}
		if *arg != "" {
			return &usageError{msg: fmt.Sprintf("unexpected argument %q; see `fobgw help`", fs.Arg(0))}
		}
		*arg = fs.Arg(0)
		args = fs.Args()[1:]
	}
}
