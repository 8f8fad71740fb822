/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_HTTPC_INTERNAL_H
#define BUNSHIN_COMMON_HTTPC_INTERNAL_H

#include <stdbool.h>
#include <sys/types.h>

#include "httpc.h"

/* One connection: the socket, and its TLS session for https:// endpoints. */
struct httpc_conn {
	int fd;
	void *tls;	/* gnutls_session_t, or NULL */
	void *tls_cred; /* gnutls_certificate_credentials_t, or NULL */
	/* bytes read past an upgrade answer's head, handed out first */
	char *early;
	size_t early_len, early_off;
};

/* httpc_tls.c */
int httpc_tls_start(struct httpc_conn *c, const char *host, int timeout_ms, struct error *err);
ssize_t httpc_tls_send(struct httpc_conn *c, const void *buf, size_t len);
ssize_t httpc_tls_recv(struct httpc_conn *c, void *buf, size_t len);
bool httpc_tls_pending(const struct httpc_conn *c);
void httpc_tls_end(struct httpc_conn *c);

#endif
