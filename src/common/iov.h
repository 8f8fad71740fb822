/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_IOV_H
#define BUNSHIN_COMMON_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/*
 * Copies between a flat buffer and the bytes [off, off + len) of a
 * scatter list iov[0, n), as far as the list reaches; return how many
 * bytes moved (less than len when the list is shorter). Device models use
 * them for headers and small structures that a guest may split across
 * descriptors anywhere it likes.
 */
size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t off, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t off, const void *buf,
		    size_t len);

#endif
