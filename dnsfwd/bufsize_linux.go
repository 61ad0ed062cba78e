package dnsfwd

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Kernel buffers of the forwarder's UDP sockets, listening and upstream, sized for a burst: a phone
// restoring its tabs, or dnsperf with 500 queries outstanding, puts hundreds of datagrams in flight at
// once, and a short stall of the process (the CPU is shared with the tunnel) must not overflow them.
// The kernel charges about 1 KiB per small datagram and doubles the figure asked for its bookkeeping,
// so 1 MiB holds some 2,000 queries or answers per socket; it is taken only while a burst lasts.
const (
	burstRecvBuffer = 1 << 20
	burstSendBuffer = 1 << 20
)

// sizeBuffers enlarges c's receive and send buffers to the burst sizes: beyond net.core.rmem_max and
// wmem_max when the process may (SO_RCVBUFFORCE and SO_SNDBUFFORCE need CAP_NET_ADMIN), else up to
// those limits. Failure leaves the kernel's defaults; nothing else changes.
func sizeBuffers(c syscall.Conn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		setBuffer(int(fd), unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, burstRecvBuffer)
		setBuffer(int(fd), unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, burstSendBuffer)
	})
}

// setBuffer sets the buffer option force, or plain when force is not permitted, to size, unless
// the buffer is already at least that large.
func setBuffer(fd, force, plain, size int) {
	if cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, plain); err == nil && cur >= 2*size {
		return // the kernel reports twice what was set
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}
