// SPDX-License-Identifier: MIT
/*
 * Tap queues through /dev/net/tun (Documentation/networking/tuntap.rst).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tap.h"

#define TAP_DEV "/dev/net/tun"

static int tap_fail(struct error *err, int fd, int code, const char *name, const char *hint)
{
	if (fd >= 0)
		close(fd);
	return error_set(err, code, "cannot open tap '%s': %s%s", name, strerror(code), hint);
}

/* Why the kernel refused TUNSETIFF, in words the user can act on. */
static const char *tap_hint(int code, bool multi_queue)
{
	if (code == EPERM)
		return " (creating or attaching a tap needs CAP_NET_ADMIN)";
	if (code == EBUSY)
		return " (another process holds it; queues=N needs a multi_queue tap)";
	if (code == EINVAL)
		return multi_queue ? " (not a tap, or a tap created without multi_queue)"
				   : " (not a tap, or a tap created with multi_queue)";
	return "";
}

static int tap_check_features(int fd, bool multi_queue)
{
	unsigned int f = 0;

	if (ioctl(fd, TUNGETFEATURES, &f) < 0)
		return -errno;
	if (!(f & IFF_VNET_HDR) || (multi_queue && !(f & IFF_MULTI_QUEUE)))
		return -EOPNOTSUPP;
	return 0;
}

int tap_open_queue(const char *name, bool multi_queue, struct error *err)
{
	struct ifreq ifr = {0};
	int hdr = TAP_VNET_HDR_SIZE;
	int fd, ret;

	if (strlen(name) >= IFNAMSIZ)
		return tap_fail(err, -1, ENAMETOOLONG, name, "");
	fd = open(TAP_DEV, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return tap_fail(err, -1, errno, name, errno == ENOENT ? " (no " TAP_DEV ")" : "");
	ret = tap_check_features(fd, multi_queue);
	if (ret)
		return tap_fail(err, fd, -ret, name,
				" (kernel lacks IFF_VNET_HDR/IFF_MULTI_QUEUE)");
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return tap_fail(err, fd, errno, name, tap_hint(errno, multi_queue));
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || tap_set_offload(fd, 0) < 0)
		return tap_fail(err, fd, errno, name, "");
	return fd;
}

/* The kernel takes TSO and UFO only with checksum offload, and ECN only with TSO. */
static unsigned int tap_offload_flags(unsigned int o)
{
	unsigned int f = 0;

	if (!(o & TAP_OFFLOAD_CSUM))
		return 0;
	f |= TUN_F_CSUM;
	if (o & TAP_OFFLOAD_TSO4)
		f |= TUN_F_TSO4;
	if (o & TAP_OFFLOAD_TSO6)
		f |= TUN_F_TSO6;
	if ((o & TAP_OFFLOAD_TSO_ECN) && (f & (TUN_F_TSO4 | TUN_F_TSO6)))
		f |= TUN_F_TSO_ECN;
	if (o & TAP_OFFLOAD_UFO)
		f |= TUN_F_UFO;
	return f;
}

int tap_set_offload(int fd, unsigned int offloads)
{
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tap_offload_flags(offloads)) < 0)
		return -errno;
	return 0;
}

int tap_set_queue_enabled(int fd, bool enabled)
{
	struct ifreq ifr = {0};

	ifr.ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(fd, TUNSETQUEUE, &ifr) < 0)
		return -errno;
	return 0;
}
