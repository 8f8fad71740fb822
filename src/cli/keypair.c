// SPDX-License-Identifier: MIT
/*
 * bunshin keypair import/list/show/delete, and what server create sends
 * of them: --key NAME, --user-data FILE (base64 in the request, at most
 * 64 KiB once decoded, as bunshind checks again).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/b64.h"
#include "cli.h"

#define CLI_KEY_FILE_MAX  (16 * 1024)
#define CLI_USER_DATA_MAX (64 * 1024)

static const char *const keypair_cols[] = {"name", "type", "fingerprint", "tenant", NULL};

/* The whole file, at most max bytes, into *out (malloc'd, NUL-ended): its length or -errno. */
static ssize_t cli_read_file(const char *path, size_t max, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	char *buf;

	if (fd < 0)
		return -errno;
	buf = malloc(max + 2);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(buf);
			close(fd);
			return -e;
		}
		if (!n)
			break;
		len += (size_t)n;
		if (len > max) {
			free(buf);
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	buf[len] = 0;
	*out = buf;
	return (ssize_t)len;
}

int cli_keypair_import(struct cli *c)
{
	const char *file = cli_opt(c, "file");
	char *key;
	ssize_t n;

	if (!file)
		return cli_usage_error("keypair import: --file PUB is required (an OpenSSH public "
				       "key, e.g. ~/.ssh/id_ed25519.pub)");
	n = cli_read_file(file, CLI_KEY_FILE_MAX, &key);
	if (n == -EFBIG)
		return cli_usage_error("keypair import: %s: larger than %d bytes: not a public key",
				       file, CLI_KEY_FILE_MAX);
	if (n < 0)
		return cli_usage_error("keypair import: %s: %s", file, strerror((int)-n));
	if (memchr(key, 0, (size_t)n)) {
		free(key);
		return cli_usage_error("keypair import: %s: not a text file", file);
	}
	key[strcspn(key, "\r\n")] = 0; /* the first line: one key */
	json_t *body = json_pack("{s:s, s:s}", "name", c->pos[0], "public_key", key);
	free(key);
	return cli_send(c, "POST", "/v1/keypairs", body, NULL);
}

int cli_keypair_list(struct cli *c)
{
	json_t *out = NULL;
	int ret = cli_call(c, "GET", "/v1/keypairs", NULL, &out, NULL);

	if (!ret)
		cli_print(c, out, keypair_cols);
	json_decref(out);
	return ret;
}

int cli_keypair_show(struct cli *c)
{
	char path[512];
	json_t *out = NULL;
	int ret;

	cli_path(path, sizeof(path), "/v1/keypairs/", c->pos[0], NULL);
	ret = cli_call(c, "GET", path, NULL, &out, NULL);
	if (!ret)
		cli_print(c, out, NULL);
	json_decref(out);
	return ret;
}

int cli_keypair_delete(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/keypairs/", c->pos[0], NULL);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

int cli_server_meta_fields(struct cli *c, json_t *body)
{
	const char *key = cli_opt(c, "key"), *file = cli_opt(c, "user-data");
	char *data, *b64;
	ssize_t n;

	if (key)
		json_object_set_new(body, "key", json_string(key));
	if (!file)
		return CLI_OK;
	n = cli_read_file(file, CLI_USER_DATA_MAX, &data);
	if (n == -EFBIG)
		return cli_usage_error("server create: --user-data %s: larger than %d bytes", file,
				       CLI_USER_DATA_MAX);
	if (n < 0)
		return cli_usage_error("server create: --user-data %s: %s", file,
				       strerror((int)-n));
	b64 = malloc(((size_t)n + 2) / 3 * 4 + 1);
	if (!b64) {
		free(data);
		return cli_usage_error("server create: out of memory");
	}
	b64_encode((const uint8_t *)data, (size_t)n, b64, true);
	json_object_set_new(body, "user_data", json_string(b64));
	free(data);
	free(b64);
	return CLI_OK;
}
