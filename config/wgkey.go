package config

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyLen is the length of a WireGuard (Curve25519) key.
const KeyLen = 32

// Key is a WireGuard private, public or preshared key.
type Key [KeyLen]byte

// ParseKey parses a base64 key as printed by wg(8).
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != KeyLen {
		return k, errors.New("not a base64 key of 32 bytes")
	}
	copy(k[:], b)
	return k, nil
}

// String returns the key in base64, as wg(8) prints it.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the key in hex, as the UAPI protocol wants it.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether the key is all zeros (unset).
func (k Key) IsZero() bool { return k == Key{} }

// GenerateKey returns a new clamped Curve25519 private key, as `wg genkey`.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand.Reader, k[:]); err != nil {
		return k, fmt.Errorf("read random bytes: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// PublicKey returns the public key of a private key, as `wg pubkey`.
func (k Key) PublicKey() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		panic("x25519 rejected a 32-byte key: " + err.Error()) // cannot happen: any 32 bytes are a key
	}
	var pub Key
	copy(pub[:], priv.PublicKey().Bytes())
	return pub
}

// LoadPrivateKey reads the private key file at path. With create set, a
// missing file is created (mode 0600, its directory 0700) holding a new key,
// and created reports it. A file readable by group or others is refused with
// the chmod command that fixes it.
func LoadPrivateKey(path string, create bool) (k Key, created bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return k, false, &ConfigError{File: path, Key: "PrivateKeyFile", Problem: "the private key file does not exist",
				Expected: "run `fobgw run` once to create it, or `fobgw genkey > " + path + "` (then chmod 600)"}
		}
		k, err = createKeyFile(path)
		return k, err == nil, err
	}
	if err != nil {
		return k, false, fmt.Errorf("private key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return k, false, &ConfigError{File: path, Key: "PrivateKeyFile", Problem: "not a regular file", Expected: "a file holding one base64 key"}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return k, false, &ConfigError{File: path, Key: "PrivateKeyFile",
			Problem:  fmt.Sprintf("the private key is readable by group or others (mode %04o)", perm),
			Expected: "run: chmod 600 " + path}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return k, false, fmt.Errorf("read private key file: %w", err)
	}
	k, err = ParseKey(string(data))
	if err != nil {
		return k, false, &ConfigError{File: path, Key: "PrivateKeyFile", Problem: err.Error(),
			Expected: "one base64 key as printed by `fobgw genkey`; delete the file to have `fobgw run` make a new one"}
	}
	return k, false, nil
}

func createKeyFile(path string) (Key, error) {
	k, err := GenerateKey()
	if err != nil {
		return k, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return k, fmt.Errorf("create directory for the private key: %w", err)
	}
	// Write to a temporary file and rename, so that a crash never leaves a
	// half-written key that the next start would refuse. A leftover .tmp
	// (a crash, or planted: a link to a readable file) is removed, not
	// reused: a new file made with O_EXCL is ours alone, and its mode is
	// set to 0600 before the key is written, whatever the umask.
	if err := os.Remove(path + ".tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return k, fmt.Errorf("remove a leftover %s.tmp: %w", path, err)
	}
	tmp, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return k, fmt.Errorf("create private key file: %w", err)
	}
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(k.String() + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return k, fmt.Errorf("write private key file %s: %w", path, err)
	}
	return k, nil
}

// ReadPrivateKey returns the configured private key: the inline one, or the
// key file's (created when missing and create is set).
func (c *Config) ReadPrivateKey(create bool) (k Key, created bool, err error) {
	if c.PrivateKey != nil {
		return *c.PrivateKey, false, nil
	}
	return LoadPrivateKey(c.PrivateKeyFile, create)
}
