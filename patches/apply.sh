#!/usr/bin/env bash
# apply.sh: prepare the wireguard-go that fobgw builds against.
#
# The repository holds only fobgw's own changes to wireguard-go, as patches in
# patches/wireguard/*.patch (applied in name order). This script takes the upstream module at
# the version go.mod requires from the Go module cache (downloading it when missing), copies it
# to build/wireguard-go (git ignores build/), applies the patches, and leaves a stamp keyed on
# the version and the patches, so that a second run with nothing changed returns at once.
# go.mod's `replace golang.zx2c4.com/wireguard => ./build/wireguard-go` points the build there.
#
# Usage: patches/apply.sh            prepare build/wireguard-go (make wgpatch runs this)
#        patches/apply.sh -version   print the upstream version go.mod requires
#
# Bumping wireguard-go: change its version in go.mod's require, run make wgpatch; a patch that
# no longer applies stops the build, named.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD=golang.zx2c4.com/wireguard
OUT=$ROOT/build/wireguard-go

die() {
	printf 'wgpatch: error: %s\n' "$*" >&2
	exit 1
}

# The required version, read from go.mod itself: `go list -m` would report the replacement.
version() {
	local v
	v=$(awk -v m="$MOD" '$1 != "replace" { for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v/) print $(i+1) }' "$ROOT/go.mod" | head -1)
	[[ -n $v ]] || die "go.mod requires no version of $MOD"
	echo "$v"
}

if [[ ${1:-} == -version ]]; then
	version
	exit 0
fi
[[ $# == 0 ]] || die "usage: patches/apply.sh [-version]"
command -v patch >/dev/null || die "patch is missing; install the Debian package: make deps"

VER=$(version)
shopt -s nullglob
PATCHES=("$ROOT"/patches/wireguard/*.patch)
STAMP=$(cat "${BASH_SOURCE[0]}" "${PATCHES[@]}" | { echo "$MOD@$VER"; cat; } | sha256sum | cut -d' ' -f1)
if [[ -f $OUT/.fobgw-stamp && $(cat "$OUT/.fobgw-stamp") == "$STAMP" ]]; then
	exit 0
fi

# Outside the main module: its go.sum holds no line for a replaced module, and go verifies
# the download against the checksum database instead.
DIR=$(cd / && GOFLAGS=-mod=mod go mod download -json "$MOD@$VER" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
[[ -n $DIR && -f $DIR/go.mod ]] || die "go mod download $MOD@$VER gave no module directory"

TMP=$OUT.tmp
rm -rf "$TMP"
mkdir -p "$(dirname "$OUT")"
cp -R "$DIR" "$TMP"
chmod -R u+w "$TMP" # the module cache is read-only
for p in "${PATCHES[@]}"; do
	name=${p#"$ROOT"/}
	if ! log=$(patch -p1 --forward --batch --no-backup-if-mismatch -r - -d "$TMP" <"$p" 2>&1); then
		rm -rf "$TMP"
		die "$name does not apply to $MOD@$VER:
$log
Refresh the patch against the new version (see its header for what it does and why)."
	fi
done
echo "$STAMP" >"$TMP/.fobgw-stamp"
rm -rf "$OUT"
mv "$TMP" "$OUT"
echo "wgpatch: $MOD@$VER with ${#PATCHES[@]} patches in ${OUT#"$ROOT"/}" >&2
