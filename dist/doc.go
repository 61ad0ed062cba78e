// Package dist holds no code: its tests check what dist/ ships, the systemd
// unit (systemd-analyze verify and security) and the Debian package built
// from dist/nfpm.yaml (installed with dpkg into a throwaway overlay of the
// machine's root in a mount namespace of its own, checked, and purged; the
// machine's own root is never written). The package test needs root, unshare
// and overlayfs; it fails, never skips, without them.
package dist
