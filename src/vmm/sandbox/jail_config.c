// SPDX-License-Identifier: MIT
/* Every path of a VMM configuration, checked inside the jail (jail_check_path()). */
#include <errno.h>
#include <string.h>

#include "../config.h"
#include "jail.h"

/* file:PATH, unix:PATH and unix:PATH,log=FILE backends; stdio has no path. */
static int jail_check_chardev(const char *opt, const char *spec, struct error *err)
{
	const char *log = spec ? strstr(spec, ",log=") : NULL;
	char sock[4096];

	if (!spec || (strncmp(spec, "file:", 5) && strncmp(spec, "unix:", 5)))
		return 0;
	if (strncmp(spec, "unix:", 5) || !log)
		return jail_check_path(opt, spec + 5, true, err);
	if ((size_t)(log - spec - 5) >= sizeof(sock))
		return error_set(err, ENAMETOOLONG, "%s: %s: too long", opt, spec);
	memcpy(sock, spec + 5, (size_t)(log - spec - 5));
	sock[log - spec - 5] = 0;
	return jail_check_path(opt, sock, true, err) ?: jail_check_path(opt, log + 5, true, err);
}

static int jail_check_optional(const char *opt, const char *path, bool may_be_missing,
			       struct error *err)
{
	return path ? jail_check_path(opt, path, may_be_missing, err) : 0;
}

int jail_check_config(const struct vmm_config *cfg, struct error *err)
{
	int ret = jail_check_optional("--kernel", cfg->kernel, false, err);

	ret = ret ?: jail_check_optional("--initrd", cfg->initrd, false, err);
	ret = ret ?: jail_check_optional("--restore", cfg->restore, false, err);
	ret = ret ?: jail_check_optional("--kvm-device", cfg->kvm_device, false, err);
	ret = ret ?: jail_check_optional("--api-sock", cfg->api_sock, true, err);
	ret = ret ?: jail_check_chardev("--serial", cfg->serial, err);
	ret = ret ?: jail_check_chardev("--console-virtio", cfg->console_virtio, err);
	if (!ret && cfg->vsock.enabled)
		ret = jail_check_path("--vsock", cfg->vsock.uds, true, err);
	for (unsigned int i = 0; !ret && i < cfg->ndisks; i++)
		ret = jail_check_path("--disk", cfg->disks[i].path, false, err);
	return ret;
}
