/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_META_H
#define BUNSHIN_DAEMON_META_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.h"

/*
 * What an instance learns about itself: key pairs (keypair.c), the key and
 * user data an instance create takes, and the metadata service on
 * 169.254.169.254:80 of every network (metadata.c).
 */

#define META_USER_DATA_MAX (64 * 1024) /* decoded, as OpenStack's limit */
#define META_ADDR	   "169.254.169.254"

#define KEYPAIR_TYPE_MAX 32
#define KEYPAIR_FP_MAX	 64 /* "SHA256:" and 43 base64 digits */
#define KEYPAIR_LINE_MAX 8192

/*
 * Checks an OpenSSH public key line ("TYPE BASE64 [COMMENT]"): a known
 * type, base64 that decodes, a blob whose own type string is the line's
 * and whose key has a sane size. Fills type and the SHA-256 fingerprint
 * as ssh-keygen -l prints it; -EINVAL with the reason in err otherwise.
 */
int keypair_parse(const char *line, char type[KEYPAIR_TYPE_MAX], char fp[KEYPAIR_FP_MAX],
		  struct error *err);

/* /v1/keypairs */
extern const struct api_op api_keypair_ops[];

/*
 * An instance create's "key" (the tenant's key pair, copied) and
 * "user_data" (base64, at most META_USER_DATA_MAX decoded) into in; *hold
 * keeps the strings alive until json_decref. false after answering 400/404.
 */
bool meta_instance_fields(struct api_ctx *c, struct store_instance_meta *in, json_t **hold);

/*
 * metadata.c: the service's thread, started once the networks are
 * reconciled; mdd_kick() after a network is created or deleted makes it
 * sync with the store at once rather than within its period.
 */
void mdd_begin(struct daemon *d);
void mdd_kick(void);

#endif
