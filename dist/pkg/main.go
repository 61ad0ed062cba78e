// Command pkg builds fobgw's Debian packages from dist/nfpm.yaml with the
// deb packager of nfpm (github.com/goreleaser/nfpm), used as a library. It
// is a module of its own so that nfpm's forty-odd modules stay out of
// fobgw's go.mod; nfpm's command is not used because it imports packagers
// (rpm, msix) whose modules the Go module proxy does not serve.
//
// Usage, from the repository's root (make package runs it):
//
//	go -C dist/pkg run . -root ../.. -version VERSION -bin bin -out bin amd64 arm64 armhf
//
// For each Debian architecture it packs the static binary of make cross
// (bin/fobgw-linux-amd64, -arm64, -armv7) and writes
// fobgw_VERSION_ARCH.deb to -out.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
)

// binaries maps a Debian architecture to the name of make cross's binary.
// Debian's armhf is ARMv7 with hard float: GOARM=7.
var binaries = map[string]string{
	"amd64": "fobgw-linux-amd64",
	"arm64": "fobgw-linux-arm64",
	"armhf": "fobgw-linux-armv7",
}

// debVersion is Debian's version syntax without an epoch or revision.
var debVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

func main() {
	root := flag.String("root", ".", "the repository's root; the other paths are relative to it")
	version := flag.String("version", "", "the package's `VERSION` (Debian syntax, e.g. 0.0~git20261128.ee0f5f5)")
	bin := flag.String("bin", "bin", "`DIR` holding the binaries of make cross")
	out := flag.String("out", "bin", "`DIR` the packages are written to")
	flag.Parse()
	if !debVersion.MatchString(*version) {
		fail(fmt.Errorf("-version %q: want a Debian version starting with a digit, e.g. 0.0~git20261128.ee0f5f5", *version))
	}
	if flag.NArg() == 0 {
		fail(fmt.Errorf("name the architectures to build: amd64, arm64, armhf"))
	}
	if err := os.Chdir(*root); err != nil {
		fail(err)
	}
	for _, arch := range flag.Args() {
		name, err := build(arch, *version, *bin, *out)
		if err != nil {
			fail(fmt.Errorf("%s: %w", arch, err))
		}
		fmt.Println(name)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dist/pkg:", err)
	os.Exit(1)
}

// build writes the package for arch and returns its file name.
func build(arch, version, bin, out string) (string, error) {
	binary, ok := binaries[arch]
	if !ok {
		return "", fmt.Errorf("unknown architecture; want amd64, arm64 or armhf")
	}
	binary = filepath.Join(bin, binary)
	if _, err := os.Stat(binary); err != nil {
		return "", fmt.Errorf("%w (run make cross first)", err)
	}
	vars := map[string]string{"ARCH": arch, "VERSION": version, "BINARY": binary}
	var unknown []string
	cfg, err := nfpm.ParseFileWithEnvMapping("dist/nfpm.yaml", func(k string) string {
		v, ok := vars[k]
		if !ok && !strings.HasPrefix(k, "NFPM_") { // nfpm asks for signing passphrases
			unknown = append(unknown, k)
		}
		return v
	})
	if err != nil {
		return "", err
	}
	if len(unknown) > 0 {
		return "", fmt.Errorf("dist/nfpm.yaml names unknown variables %v", unknown)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(out, deb.Default.ConventionalFileName(info))
	f, err := os.CreateTemp(out, ".fobgw-*.deb")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return name, os.Rename(f.Name(), name)
}
