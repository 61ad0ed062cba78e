package config

import (
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublicKeyRFC7748(t *testing.T) {
	// RFC 7748 section 6.1: Alice's private and public keys.
	var priv Key
	hex.Decode(priv[:], []byte("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	want := "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	if got := priv.PublicKey().Hex(); got != want {
		t.Errorf("PublicKey = %s, want %s", got, want)
	}
}

func TestGenerateKeyClamped(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b || a.IsZero() {
		t.Fatal("two generated keys are equal or zero")
	}
	if a[0]&7 != 0 || a[31]&128 != 0 || a[31]&64 == 0 {
		t.Errorf("key not clamped: %x", a)
	}
	p, err := ParseKey(a.String() + "\n")
	if err != nil || p != a {
		t.Errorf("round trip: %v %v", p, err)
	}
}

// TestPublicKeyMatchesWg compares with wg(8) when it is installed.
func TestPublicKeyMatchesWg(t *testing.T) {
	wg, err := exec.LookPath("wg")
	if err != nil {
		t.Log("wg(8) not installed; compared with RFC 7748 only")
		return
	}
	k, _ := GenerateKey()
	cmd := exec.Command(wg, "pubkey")
	cmd.Stdin = strings.NewReader(k.String() + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wg pubkey: %v", err)
	}
	if got, want := k.PublicKey().String()+"\n", string(out); got != want {
		t.Errorf("PublicKey %q, wg pubkey %q", got, want)
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, s := range []string{"", "abc", "If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXS=", "If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXSAA"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

func TestLoadPrivateKeyCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "fobgw")
	path := filepath.Join(dir, "private.key")

	// Without create a missing file is an error that says what to do.
	_, _, err := LoadPrivateKey(path, false)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "fobgw run") || !strings.Contains(err.Error(), "fobgw genkey") {
		t.Fatalf("missing key without create: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadPrivateKey(create=false) created %s", dir)
	}

	k, created, err := LoadPrivateKey(path, true)
	if err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	data, _ := os.ReadFile(path)
	if string(data) != k.String()+"\n" {
		t.Errorf("key file holds %q, want %q", data, k.String()+"\n")
	}
	k2, created, err := LoadPrivateKey(path, true)
	if err != nil || created || k2 != k {
		t.Errorf("reload: %v, created %v, same %v", err, created, k2 == k)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind")
	}
}

func TestLoadPrivateKeyRefusesReadable(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "private.key")
			k, _ := GenerateKey()
			if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, mode)
			_, _, err := LoadPrivateKey(path, true)
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("mode %v: want refusal with the chmod command, got %v", mode, err)
			}
		})
	}
}

func TestLoadPrivateKeyGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.key")
	os.WriteFile(path, []byte("not a key\n"), 0o600)
	if _, _, err := LoadPrivateKey(path, true); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("garbage key: %v", err)
	}
}

// TestLoadPrivateKeyLeftoverTmp: a leftover private.key.tmp (mode 0644,
// from a crash, or a link planted to a readable file) is not reused: the
// key never lands in it, and the key file is 0600.
func TestLoadPrivateKeyLeftoverTmp(t *testing.T) {
	for _, kind := range []string{"file", "hardlink", "symlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "private.key")
			other := filepath.Join(dir, "readable.txt") // a file others may read
			if err := os.WriteFile(other, []byte("public notes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chmod(other, 0o644)
			switch kind {
			case "file":
				if err := os.WriteFile(path+".tmp", []byte("half a key from a crash, and longer than a key is: 0123456789abcdef\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path+".tmp", 0o644)
			case "hardlink":
				if err := os.Link(other, path+".tmp"); err != nil {
					t.Fatal(err)
				}
			case "symlink":
				if err := os.Symlink(other, path+".tmp"); err != nil {
					t.Fatal(err)
				}
			}
			k, created, err := LoadPrivateKey(path, true)
			if err != nil || !created {
				t.Fatalf("create over a leftover .tmp: %v, created %v", err, created)
			}
			fi, err := os.Lstat(path)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file %v, %v; want a regular file with mode 0600", fi, err)
			}
			if data, _ := os.ReadFile(path); string(data) != k.String()+"\n" {
				t.Errorf("key file holds %q", data)
			}
			if data, _ := os.ReadFile(other); string(data) != "public notes\n" {
				t.Errorf("the file the leftover .tmp pointed at was written: %q", data)
			}
			if fi, _ := os.Stat(other); fi.Mode().Perm() != 0o644 {
				t.Errorf("the file the leftover .tmp pointed at changed mode: %v", fi.Mode().Perm())
			}
			if _, err := os.Lstat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left behind")
			}
		})
	}
}
