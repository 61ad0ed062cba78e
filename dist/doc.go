// Package dist holds no code: its tests check what dist/ ships, the systemd
// unit (systemd-analyze verify and security) and the Debian package built
// from dist/nfpm.yaml (installed with dpkg into the machine's root, checked,
// and purged). The package test needs root and a machine it may install
// into; it fails, never skips, without them.
package dist
