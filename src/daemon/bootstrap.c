// SPDX-License-Identifier: MIT
/*
 * What a new state directory gets: the admin tenant, its admin user and a
 * token for it (written to a 0600 file, its path printed), the default
 * flavors and the test guest as a public image. Each step checks for its
 * result first, so a daemon that died half-way through its first start
 * completes the rest on the next.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "daemon.h"

#define BOOT_GUEST_IMAGE   "test-guest"
#define BOOT_GUEST_CMDLINE "test=serial-echo"

static const struct store_flavor_new boot_flavors[] = {
	{"tiny", 1, 64, 0, 0},
	{"small", 1, 512, 1, 0},
	{"medium", 2, 2048, 10, 0},
	{"large", 4, 8192, 40, 0},
};

static int boot_write_token(struct daemon *d, const char *token, struct error *err)
{
	char path[4200];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/admin.token", d->opts.state_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	n = write(fd, token, strlen(token));
	if (n != (ssize_t)strlen(token) || write(fd, "\n", 1) != 1 || fsync(fd)) {
		close(fd);
		return error_set(err, EIO, "%s: cannot write the token", path);
	}
	close(fd);
	printf("bunshind: the admin token is in %s\n", path);
	fflush(stdout);
	return 0;
}

static int boot_admin(struct daemon *d, struct store *s, struct error *err)
{
	char token[AUTH_TOKEN_LEN + 1], hash[AUTH_SHA256_HEX];
	struct store_quota q = STORE_DEFAULT_QUOTA;
	int64_t tid, uid, kid;
	json_t *row;
	int ret;

	ret = STORE(s, tenant_create, "admin", &q, &tid, err);
	if (ret == -EEXIST) {
		ret = STORE(s, tenant_get, "admin", &row, err);
		if (ret)
			return ret;
		tid = json_integer_value(json_object_get(row, "id"));
		json_decref(row);
	} else if (ret) {
		return ret;
	}
	ret = STORE(s, user_create, tid, "admin", STORE_ROLE_ADMIN, &uid, err);
	if (ret == -EEXIST)
		return 0;
	if (ret || (ret = auth_new_token(token, err)))
		return ret;
	auth_hash_token(token, hash);
	ret = STORE(s, token_create, uid, hash, "created on first start", &kid, err);
	return ret ? ret : boot_write_token(d, token, err);
}

static int boot_guest(struct daemon *d, struct store *s, struct error *err)
{
	struct store_image_new im = {
		.name = BOOT_GUEST_IMAGE, .kind = "kernel", .cmdline = BOOT_GUEST_CMDLINE};
	char dst[4200], sha[AUTH_SHA256_HEX];
	json_t *row;
	int64_t id;
	int ret;

	if (!d->opts.guest || !STORE(s, image_get, 0, BOOT_GUEST_IMAGE, &row, err)) {
		if (d->opts.guest)
			json_decref(row);
		return 0;
	}
	ret = daemon_image_copy(d, d->opts.guest, BOOT_GUEST_IMAGE, dst, sizeof(dst), sha, &im.size,
				err);
	if (ret)
		return error_wrap(err, "--guest");
	im.path = dst;
	im.sha256 = sha;
	ret = STORE(s, image_create, &im, &id, err);
	if (ret)
		unlink(dst);
	else
		log_info("image %s registered from %s", BOOT_GUEST_IMAGE, d->opts.guest);
	return ret;
}

int bootstrap_first_start(struct daemon *d, struct error *err)
{
	struct store *s = pool_get(d->pool);
	int ret = boot_admin(d, s, err);
	int64_t id;

	for (size_t i = 0; !ret && i < sizeof(boot_flavors) / sizeof(boot_flavors[0]); i++) {
		ret = STORE(s, flavor_create, &boot_flavors[i], &id, err);
		if (ret == -EEXIST)
			ret = 0;
	}
	if (!ret)
		ret = boot_guest(d, s, err);
	pool_put(d->pool, s);
	return ret;
}
