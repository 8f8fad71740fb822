// SPDX-License-Identifier: MIT
/*
 * httpc's https://: a GnuTLS client session over the connected socket.
 * The server's certificate must chain to the CA file given
 * (httpc_set_cacert()) or, without one, to the system's CAs, and name the
 * host of the endpoint; anything else ends the connection with one line
 * saying what was wrong.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpc_internal.h"

static const char *httpc_cacert;

void httpc_set_cacert(const char *path)
{
	httpc_cacert = path && *path ? path : NULL;
}

static bool httpc_is_ip(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int httpc_tls_creds(gnutls_certificate_credentials_t *cred, struct error *err)
{
	int n;

	if (gnutls_certificate_allocate_credentials(cred) < 0)
		return error_set(err, ENOMEM, "out of memory");
	if (httpc_cacert) {
		if (access(httpc_cacert, R_OK))
			return error_set(err, errno, "CA file %s: %s", httpc_cacert,
					 strerror(errno));
		n = gnutls_certificate_set_x509_trust_file(*cred, httpc_cacert,
							   GNUTLS_X509_FMT_PEM);
		if (n <= 0)
			return error_set(err, EINVAL, "CA file %s: no PEM certificate in it%s%s",
					 httpc_cacert, n < 0 ? ": " : "",
					 n < 0 ? gnutls_strerror(n) : "");
		return 0;
	}
	if (gnutls_certificate_set_x509_system_trust(*cred) <= 0)
		return error_set(err, ENOENT,
				 "no system CA certificates: give a CA file (--cacert)");
	return 0;
}

/* Why the server's certificate was refused, in one line. */
static int httpc_tls_verify_error(gnutls_session_t s, const char *host, struct error *err)
{
	unsigned int status = gnutls_session_get_verify_cert_status(s);
	gnutls_datum_t out = {0};
	size_t n;
	int ret;

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0)
		return error_set(err, EACCES, "the certificate of %s is not trusted", host);
	n = strlen((char *)out.data);
	while (n && out.data[n - 1] == ' ')
		out.data[--n] = 0;
	ret = error_set(err, EACCES, "the certificate of %s was refused: %s", host,
			(char *)out.data);
	gnutls_free(out.data);
	return ret;
}

int httpc_tls_start(struct httpc_conn *c, const char *host, int timeout_ms, struct error *err)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_session_t s = NULL;
	int ret = httpc_tls_creds(&cred, err);

	if (ret) {
		gnutls_certificate_free_credentials(cred);
		return ret;
	}
	c->tls_cred = cred;
	if (gnutls_init(&s, GNUTLS_CLIENT) < 0)
		return error_set(err, ENOMEM, "out of memory");
	c->tls = s;
	gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	if (!httpc_is_ip(host))
		gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, strlen(host));
	gnutls_session_set_verify_cert(s, host, 0);
	gnutls_transport_set_int(s, c->fd);
	gnutls_handshake_set_timeout(s, (unsigned int)timeout_ms);
	do {
		ret = gnutls_handshake(s);
	} while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
		return httpc_tls_verify_error(s, host, err);
	if (ret < 0)
		return error_set(err, EPROTO, "TLS with %s: %s (is it an https:// server?)", host,
				 gnutls_strerror(ret));
	return 0;
}

ssize_t httpc_tls_send(struct httpc_conn *c, const void *buf, size_t len)
{
	ssize_t n;

	do {
		n = gnutls_record_send(c->tls, buf, len);
	} while (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN);
	if (n < 0) {
		errno = EPIPE;
		return -1;
	}
	return n;
}

ssize_t httpc_tls_recv(struct httpc_conn *c, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = gnutls_record_recv(c->tls, buf, len);
	} while (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN);
	/* A peer that closes without close_notify has still ended its answer. */
	if (n == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	if (n < 0) {
		errno = ECONNRESET;
		return -1;
	}
	return n;
}

bool httpc_tls_pending(const struct httpc_conn *c)
{
	return c->tls && gnutls_record_check_pending(c->tls) > 0;
}

void httpc_tls_end(struct httpc_conn *c)
{
	if (c->tls) {
		gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	if (c->tls_cred)
		gnutls_certificate_free_credentials(c->tls_cred);
	c->tls = NULL;
	c->tls_cred = NULL;
}
