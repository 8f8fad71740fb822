// SPDX-License-Identifier: MIT
/*
 * Key pairs: a tenant's named OpenSSH public keys, imported (bunshin never
 * makes or sees a private key) and handed to instances by the metadata
 * service. A key is checked the way ssh would read it, so that a typo is
 * refused at import rather than found at the first failed login.
 */
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/b64.h"
#include "../common/log.h"
#include "meta.h"

/* ---- the key blob (RFC 4253 6.6, RFC 5656 3.1, RFC 8709) ---- */

struct kp_blob {
	const uint8_t *p;
	size_t left;
};

/* The next string of the blob; false when the blob ends first. */
static bool kp_string(struct kp_blob *b, const uint8_t **s, size_t *len)
{
	uint32_t n;

	if (b->left < 4)
		return false;
	n = (uint32_t)b->p[0] << 24 | (uint32_t)b->p[1] << 16 | (uint32_t)b->p[2] << 8 | b->p[3];
	if (n > b->left - 4)
		return false;
	*s = b->p + 4;
	*len = n;
	b->p += 4 + n;
	b->left -= 4 + n;
	return true;
}

static bool kp_string_is(const uint8_t *s, size_t len, const char *want)
{
	return len == strlen(want) && !memcmp(s, want, len);
}

/* An mpint's size in bits (its leading zero byte, for a positive one, not counted). */
static size_t kp_mpint_bits(const uint8_t *s, size_t len)
{
	while (len && !*s) {
		s++;
		len--;
	}
	if (!len)
		return 0;
	return len * 8 - (size_t)__builtin_clz(*s) + 24;
}

static int kp_check_rsa(struct kp_blob *b, struct error *err)
{
	const uint8_t *e, *n;
	size_t elen, nlen, bits;

	if (!kp_string(b, &e, &elen) || !kp_string(b, &n, &nlen) || !elen)
		return error_set(err, EINVAL, "public_key: the ssh-rsa key is cut short");
	bits = kp_mpint_bits(n, nlen);
	if (bits < 1024 || bits > 16384)
		return error_set(err, EINVAL,
				 "public_key: an RSA modulus of %zu bits (1024 to 16384 allowed)",
				 bits);
	return 0;
}

static int kp_check_ecdsa(struct kp_blob *b, const char *type, struct error *err)
{
	const char *curve = type + strlen("ecdsa-sha2-");
	/* an uncompressed point: 0x04, then x and y */
	size_t want = !strcmp(curve, "nistp256") ? 65 : !strcmp(curve, "nistp384") ? 97 : 133;
	const uint8_t *c, *q;
	size_t clen, qlen;

	if (!kp_string(b, &c, &clen) || !kp_string(b, &q, &qlen))
		return error_set(err, EINVAL, "public_key: the %s key is cut short", type);
	if (!kp_string_is(c, clen, curve))
		return error_set(err, EINVAL, "public_key: the key's curve is not %s", curve);
	if (qlen != want || q[0] != 4)
		return error_set(err, EINVAL, "public_key: the %s point is not %zu bytes", type,
				 want);
	return 0;
}

static int kp_check_blob(const uint8_t *blob, size_t len, const char *type, struct error *err)
{
	struct kp_blob b = {blob, len};
	const uint8_t *t, *k;
	size_t tlen, klen;
	int ret;

	if (!kp_string(&b, &t, &tlen) || !kp_string_is(t, tlen, type))
		return error_set(err, EINVAL,
				 "public_key: the key's own type is not %s (a key of another "
				 "type, or not a key)",
				 type);
	if (!strcmp(type, "ssh-ed25519")) {
		if (!kp_string(&b, &k, &klen) || klen != 32)
			return error_set(err, EINVAL, "public_key: an ed25519 key is 32 bytes");
		ret = 0;
	} else if (!strcmp(type, "ssh-rsa")) {
		ret = kp_check_rsa(&b, err);
	} else {
		ret = kp_check_ecdsa(&b, type, err);
	}
	if (!ret && b.left)
		return error_set(err, EINVAL, "public_key: %zu bytes after the key", b.left);
	return ret;
}

static bool kp_known_type(const char *t)
{
	static const char *const types[] = {"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256",
					    "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (!strcmp(t, types[i]))
			return true;
	}
	return false;
}

static void kp_fingerprint(const uint8_t *blob, size_t len, char fp[KEYPAIR_FP_MAX])
{
	struct sha256_ctx ctx;
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_init(&ctx);
	sha256_update(&ctx, len, blob);
	sha256_digest(&ctx, sizeof(d), d);
	memcpy(fp, "SHA256:", 7);
	b64_encode(d, sizeof(d), fp + 7, false);
}

int keypair_parse(const char *line, char type[KEYPAIR_TYPE_MAX], char fp[KEYPAIR_FP_MAX],
		  struct error *err)
{
	size_t len = strlen(line), tlen, blen;
	const char *b64;
	uint8_t *blob;
	ssize_t n;
	int ret;

	if (len > KEYPAIR_LINE_MAX)
		return error_set(err, EINVAL, "public_key: longer than %d bytes", KEYPAIR_LINE_MAX);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)line[i] < 0x20 && !strchr("\t\r\n", line[i]))
			return error_set(err, EINVAL, "public_key: a control character in it");
	}
	tlen = strcspn(line, " \t");
	if (!tlen || tlen >= KEYPAIR_TYPE_MAX || !line[tlen])
		return error_set(err, EINVAL,
				 "public_key: not an OpenSSH public key line "
				 "(TYPE BASE64 [COMMENT])");
	memcpy(type, line, tlen);
	type[tlen] = 0;
	if (!kp_known_type(type))
		return error_set(err, EINVAL,
				 "public_key: unknown key type '%s' (ssh-ed25519, ssh-rsa, "
				 "ecdsa-sha2-nistp256/384/521)",
				 type);
	b64 = line + tlen + strspn(line + tlen, " \t");
	blen = strcspn(b64, " \t\r\n");
	blob = malloc(blen / 4 * 3 + 3);
	if (!blob)
		return error_set(err, ENOMEM, "out of memory");
	n = b64_decode(b64, blen, blob, blen / 4 * 3 + 3);
	ret = n <= 0 ? error_set(err, EINVAL, "public_key: the key is not valid base64")
		     : kp_check_blob(blob, (size_t)n, type, err);
	if (!ret)
		kp_fingerprint(blob, (size_t)n, fp);
	free(blob);
	return ret;
}

/* ---- the API ---- */

static json_t *kp_view(json_t *k)
{
	json_object_del(k, "tenant_id");
	return k;
}

static void api_keypair_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out, *k;
	size_t i;
	int ret = STORE(c->s, keypair_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	json_array_foreach(out, i, k) kp_view(k);
	api_ok(c, 200, out);
}

static json_t *kp_lookup(struct api_ctx *c)
{
	struct error err = {0};
	json_t *k;
	int ret = STORE(c->s, keypair_get, api_scope(c), c->seg[1], &k, &err);

	snprintf(c->target, sizeof(c->target), "keypair %s", c->seg[1]);
	if (ret) {
		api_fail(c, ret, &err, NULL);
		return NULL;
	}
	return k;
}

static void api_keypair_show(struct api_ctx *c)
{
	json_t *k = kp_lookup(c);

	if (k)
		api_ok(c, 200, kp_view(k));
}

static void api_keypair_import(struct api_ctx *c)
{
	static const char *const fields[] = {"name", "public_key", NULL};
	struct store_keypair_new k = {.tenant_id = c->who.tenant_id};
	char type[KEYPAIR_TYPE_MAX], fp[KEYPAIR_FP_MAX], *key;
	struct error err = {0};
	json_t *out;
	int64_t id;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, true))
		return;
	if (httpd_field_str(c->req->body, "name", true, &k.name, c->resp))
		return api_err(c, 400, "invalid_request", "name", "name is required");
	if (!api_valid_name(c, "name", k.name))
		return;
	if (httpd_field_str(c->req->body, "public_key", true, &k.public_key, c->resp))
		return api_err(c, 400, "invalid_request", "public_key",
			       "public_key is required, an OpenSSH public key line");
	if (keypair_parse(k.public_key, type, fp, &err))
		return api_err(c, 400, "invalid_request", "public_key", "%s", err.msg);
	/* One line, as authorized_keys wants it, whatever trailing newline the file had. */
	key = strndup(k.public_key, strcspn(k.public_key, "\r\n"));
	if (!key)
		return api_err(c, 500, "internal", NULL, "out of memory");
	k.public_key = key;
	k.type = type;
	k.fingerprint = fp;
	snprintf(c->target, sizeof(c->target), "keypair %s", k.name);
	ret = STORE(c->s, keypair_create, &k, &id, &err);
	free(key);
	if (!ret)
		ret = STORE(c->s, keypair_get, c->who.tenant_id,
			    json_string_value(json_object_get(c->req->body, "name")), &out, &err);
	if (ret)
		return api_fail(c, ret, &err, ret == -EEXIST ? "name" : NULL);
	api_ok(c, 201, kp_view(out));
}

static void api_keypair_delete(struct api_ctx *c)
{
	struct error err = {0};
	json_t *k;
	int ret;

	if (!api_need_writer(c) || !(k = kp_lookup(c)))
		return;
	ret = STORE(c->s, keypair_delete, json_integer_value(json_object_get(k, "id")), &err);
	json_decref(k);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 204, NULL);
}

const struct api_op api_keypair_ops[] = {
	{"GET", "keypairs", api_keypair_list},
	{"POST", "keypairs", api_keypair_import},
	{"GET", "keypairs/:", api_keypair_show},
	{"DELETE", "keypairs/:", api_keypair_delete},
	{NULL, NULL, NULL},
};

/* ---- an instance create's key and user data ---- */

static bool meta_user_data(struct api_ctx *c, const char *ud)
{
	size_t len = strlen(ud);
	uint8_t *buf;
	ssize_t n;

	if (len > (META_USER_DATA_MAX + 2) / 3 * 4)
		return api_err(c, 400, "invalid_request", "user_data",
			       "user_data: more than %d bytes once decoded", META_USER_DATA_MAX),
		       false;
	buf = malloc(len / 4 * 3 + 3);
	if (!buf)
		return api_err(c, 500, "internal", NULL, "out of memory"), false;
	n = b64_decode(ud, len, buf, len / 4 * 3 + 3);
	free(buf);
	if (n < 0)
		return api_err(c, 400, "invalid_request", "user_data",
			       "user_data must be base64 (padded, no line breaks)"),
		       false;
	if (n > META_USER_DATA_MAX)
		return api_err(c, 400, "invalid_request", "user_data",
			       "user_data: more than %d bytes once decoded", META_USER_DATA_MAX),
		       false;
	return true;
}

bool meta_instance_fields(struct api_ctx *c, struct store_instance_meta *in, json_t **hold)
{
	const char *key = NULL, *ud = NULL;
	struct error err = {0};
	int ret;

	*hold = NULL;
	if (httpd_field_str(c->req->body, "key", false, &key, c->resp))
		return api_err(c, 400, "invalid_request", "key", "key must be a key pair's name"),
		       false;
	if (httpd_field_str(c->req->body, "user_data", false, &ud, c->resp))
		return api_err(c, 400, "invalid_request", "user_data",
			       "user_data must be a base64 string"),
		       false;
	if (ud && !meta_user_data(c, ud))
		return false;
	in->user_data_b64 = ud;
	if (!key)
		return true;
	ret = STORE(c->s, keypair_get, c->who.tenant_id, key, hold, &err);
	if (ret) {
		api_fail(c, ret, &err, "key");
		return false;
	}
	in->key_name = json_string_value(json_object_get(*hold, "name"));
	in->public_key = json_string_value(json_object_get(*hold, "public_key"));
	return true;
}
