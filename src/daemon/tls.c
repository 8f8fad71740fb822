// SPDX-License-Identifier: MIT
/*
 * bunshind's HTTPS: --tls-cert FILE and --tls-key FILE (PEM) are read once
 * at start and checked here, with GnuTLS, before libmicrohttpd gets them:
 * an unreadable file, something that is not PEM, or a key that is not the
 * certificate's stops the start with one line saying which. TCP listeners
 * then speak HTTPS; the unix socket, reached only by who may open it,
 * stays plain. Plain TCP on an address other hosts can reach is allowed
 * (a test bench, a trusted network) but warned about: tokens would cross
 * it in the clear.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "daemon.h"

#define DTLS_PEM_MAX (1024 * 1024)

static int dtls_read(const char *opt, const char *path, char **out, struct error *err)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int ret = read_file(path, DTLS_PEM_MAX, &data, &len);
	char *s;

	if (ret)
		return error_set(err, -ret, "%s %s: %s", opt, path, strerror(-ret));
	s = realloc(data, len + 1);
	if (!s) {
		free(data);
		return error_set(err, ENOMEM, "out of memory");
	}
	s[len] = 0;
	if (!strstr(s, "-----BEGIN ")) {
		free(s);
		return error_set(err, EINVAL, "%s %s: not a PEM file", opt, path);
	}
	*out = s;
	return 0;
}

/* What MHD would find out later, and say less clearly: the pair is checked here. */
static int dtls_check_pair(const struct daemon_opts *o, const char *cert, const char *key,
			   struct error *err)
{
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t c = {(unsigned char *)cert, (unsigned int)strlen(cert)};
	gnutls_datum_t k = {(unsigned char *)key, (unsigned int)strlen(key)};
	int ret;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return error_set(err, ENOMEM, "out of memory");
	ret = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		return error_set(err, EINVAL, "--tls-key %s is not the key of --tls-cert %s",
				 o->tls_key, o->tls_cert);
	if (ret < 0)
		return error_set(err, EINVAL, "--tls-cert %s / --tls-key %s: %s", o->tls_cert,
				 o->tls_key, gnutls_strerror(ret));
	return 0;
}

int dtls_load(struct daemon *d, struct error *err)
{
	const struct daemon_opts *o = &d->opts;
	int ret;

	if (!o->tls_cert && !o->tls_key)
		return 0;
	if (!o->tls_cert || !o->tls_key)
		return error_set(err, EINVAL, "--tls-cert and --tls-key go together");
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return error_set(err, ENOTSUP, "this libmicrohttpd was built without TLS");
	ret = dtls_read("--tls-cert", o->tls_cert, &d->tls_cert_pem, err) ?:
	      dtls_read("--tls-key", o->tls_key, &d->tls_key_pem, err) ?:
	      dtls_check_pair(o, d->tls_cert_pem, d->tls_key_pem, err);
	if (ret)
		dtls_free(d);
	return ret;
}

void dtls_free(struct daemon *d)
{
	free(d->tls_cert_pem);
	if (d->tls_key_pem)
		explicit_bzero(d->tls_key_pem, strlen(d->tls_key_pem));
	free(d->tls_key_pem);
	d->tls_cert_pem = d->tls_key_pem = NULL;
}

/* Whether every address HOST names is a loopback one. */
static bool dtls_loopback(const char *host)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	bool all = true;

	if (getaddrinfo(host, NULL, &hints, &res))
		return false;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)ai->ai_addr;

			all &= (ntohl(a->sin_addr.s_addr) >> 24) == 127;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)ai->ai_addr;

			all &= IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
		}
	}
	freeaddrinfo(res);
	return all;
}

void dtls_warn_plain(const struct daemon *d, const char *listen)
{
	char host[256];
	const char *colon;
	size_t n;

	if (d->tls_cert_pem || strncmp(listen, "tcp:", 4))
		return;
	colon = strrchr(listen + 4, ':');
	n = colon ? (size_t)(colon - listen - 4) : 0;
	if (n >= sizeof(host))
		n = sizeof(host) - 1;
	memcpy(host, listen + 4, n);
	host[n] = 0;
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = 0;
	}
	if (!dtls_loopback(host))
		log_warn("%s: plain HTTP on an address other hosts may reach: tokens cross it "
			 "in the clear (give --tls-cert and --tls-key)",
			 listen);
}
