/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_TESTS_DAEMON_FAKEINST_H
#define BUNSHIN_TESTS_DAEMON_FAKEINST_H

#include <stdbool.h>

/*
 * A fake instance for the metadata and DNS tests: a network namespace of
 * its own with a veth on a network's bridge, carrying a port's MAC and
 * IP and a default route via the gateway, as a guest holding that port
 * would. Sockets are made inside it; the test talks through them.
 */
struct fake {
	int ns;	       /* the instance's namespace */
	int home;      /* the test's */
	char veth[16]; /* the host end, on the bridge */
};

/* ip is "A.B.C.D/PREFIX"; fails the test on error. */
void fake_make(struct fake *f, const char *veth, const char *bridge, const char *mac,
	       const char *ip, const char *gw);
void fake_free(struct fake *f);

/*
 * One HTTP/1.1 request to 169.254.169.254:80 from inside: head_extra is
 * more header lines ("Name: value\r\n"...) or NULL. Returns the status (-1:
 * no answer within 5 s), *body the body (malloc'd, NUL-terminated) unless
 * body is NULL.
 */
int fake_http(struct fake *f, const char *method, const char *path, const char *head_extra,
	      char **body);
/* A TCP connection from inside to 169.254.169.254:80: its fd, or -1. */
int fake_connect(struct fake *f);
/* Reads what the peer sends until it closes (or ms pass): the bytes, malloc'd, NUL-ended. */
char *fake_read_all(int fd, int ms);

/* A DNS A query for name to server:53 from inside: the first address answered, or "". */
const char *fake_dns_a(struct fake *f, const char *server, const char *name);
/* fake_dns_a() until it answers (dnsmasq starts, reads its names file) or ms pass: "" then. */
const char *fake_dns_a_wait(struct fake *f, const char *server, const char *name, int ms);

/* Waits (up to ms) until the metadata service answers in the fake instance's network. */
bool fake_wait_metadata(struct fake *f, int ms);

#endif
