// SPDX-License-Identifier: MIT
/*
 * Tokens are 32 random bytes shown once; the store keeps only their
 * SHA-256, so a copy of state.db does not hand out access.
 */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon.h"

static void auth_hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

int auth_new_token(char out[AUTH_TOKEN_LEN + 1], struct error *err)
{
	uint8_t raw[32];

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return error_set(err, errno ? errno : EIO, "getrandom: %s", strerror(errno));
	memcpy(out, "bsn_", 4);
	auth_hex(raw, sizeof(raw), out + 4);
	return 0;
}

void auth_hash_token(const char *token, char out[AUTH_SHA256_HEX])
{
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];

	sha256_init(&ctx);
	sha256_update(&ctx, strlen(token), (const uint8_t *)token);
	sha256_digest(&ctx, sizeof(digest), digest);
	auth_hex(digest, sizeof(digest), out);
}

int auth_hash_file(const char *path, char out[AUTH_SHA256_HEX], int64_t *size, struct error *err)
{
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE], buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	sha256_init(&ctx);
	*size = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sha256_update(&ctx, (size_t)n, buf);
		*size += n;
	}
	close(fd);
	if (n < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	sha256_digest(&ctx, sizeof(digest), digest);
	auth_hex(digest, sizeof(digest), out);
	return 0;
}
