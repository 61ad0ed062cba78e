package pmtud

const (
	// DefaultCeiling is the ceiling of MTU = auto: wireguard-go's and
	// wg-quick's default, 1420 = 1500 - 80 (outer IPv6 40, UDP 8,
	// WireGuard 32).
	DefaultCeiling = 1420
	// DefaultFloor is the smallest effective MTU a search settles on: IPv6
	// needs 1280 (RFC 8200 section 5).
	DefaultFloor = 1280
	// Overhead is what WireGuard adds to an inner packet of n bytes on an
	// IPv4 path: the outer datagram is n + 60 bytes (n + 80 over IPv6).
	Overhead = 20 + 8 + 32
)

// Ceiling is the ceiling rule of the MTU key: configured 0 means
// MTU = auto, whose ceiling is DefaultCeiling; a number is its own ceiling.
func Ceiling(configured int) int {
	if configured <= 0 {
		return DefaultCeiling
	}
	return configured
}

// Effective is the MTU the tunnel uses: the smaller of the ceiling and the
// measured path, the ceiling while nothing is measured (path 0), and never
// below floor unless the ceiling itself is.
func Effective(ceiling, floor, path int) int {
	e := ceiling
	if path > 0 {
		e = min(e, path)
	}
	return max(e, min(floor, ceiling))
}
