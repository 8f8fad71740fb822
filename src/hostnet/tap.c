// SPDX-License-Identifier: MIT
/*
 * Persistent taps for instance ports (Documentation/networking/tuntap.rst).
 * The daemon creates them, owned by the VMM's user, so an unprivileged
 * bunshin-vmm can attach to them; they outlive every file descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

#define TAP_DEV "/dev/net/tun"

static int tap_fail(struct error *err, int fd, int code, const char *name, const char *what)
{
	if (fd >= 0)
		close(fd);
	return error_set(err, code, "creating tap '%s': %s: %s%s", name, what, strerror(code),
			 code == EPERM ? " (needs CAP_NET_ADMIN)" : "");
}

/*
 * TUNSETIFF on a tap that exists attaches to it. The flags must be those of
 * src/vmm/net/tap.c (the kernel refuses a multi_queue mismatch with EINVAL);
 * EBUSY means a single-queue tap is held by its VMM right now.
 */
static int tap_attach(int fd, const char *name, const struct hostnet_tap_opts *o)
{
	struct ifreq ifr = {0};

	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (o->multi_queue ? IFF_MULTI_QUEUE : 0);
	return ioctl(fd, TUNSETIFF, &ifr) < 0 ? -errno : 0;
}

static int tap_configure(int fd, const char *name, const struct hostnet_tap_opts *o,
			 struct error *err)
{
	if (ioctl(fd, TUNSETOWNER, (unsigned long)o->uid) < 0)
		return tap_fail(err, fd, errno, name, "TUNSETOWNER");
	if (ioctl(fd, TUNSETGROUP, (unsigned long)o->gid) < 0)
		return tap_fail(err, fd, errno, name, "TUNSETGROUP");
	if (ioctl(fd, TUNSETPERSIST, 1ul) < 0)
		return tap_fail(err, fd, errno, name, "TUNSETPERSIST");
	close(fd);
	return 0;
}

int hostnet_tap_create(struct hostnet *hn, const char *name, const struct hostnet_tap_opts *opts,
		       struct error *err)
{
	bool exists;
	int fd, ret;

	ret = hostnet_name_check(name, err);
	if (ret)
		return ret;
	ret = hostnet_link_expect_kind(hn, name, "tun", "tap", &exists, err);
	if (ret)
		return ret;
	fd = open(TAP_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return tap_fail(err, -1, errno, name, "open " TAP_DEV);
	ret = tap_attach(fd, name, opts);
	if (ret == -EBUSY && exists) {
		/* In use by its VMM: settings cannot change under it; leave it as it is. */
		close(fd);
		return 0;
	}
	if (ret == -EINVAL && exists) {
		close(fd);
		return error_set(err, EEXIST,
				 "creating tap '%s': it exists with multi_queue %s (asked: %s), "
				 "or as a tun",
				 name, opts->multi_queue ? "off" : "on",
				 opts->multi_queue ? "on" : "off");
	}
	if (ret)
		return tap_fail(err, fd, -ret, name, "TUNSETIFF");
	return tap_configure(fd, name, opts, err);
}
