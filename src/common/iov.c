// SPDX-License-Identifier: MIT
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "iov.h"

/* One walk for both directions: to_buf copies segment -> buf, else buf -> segment. */
static size_t iov_copy(const struct iovec *iov, unsigned int n, size_t off, uint8_t *buf,
		       size_t len, bool to_buf)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		uint8_t *seg = iov[i].iov_base;
		size_t l = iov[i].iov_len, take;

		if (off >= l) {
			off -= l;
			continue;
		}
		take = l - off < len - done ? l - off : len - done;
		if (to_buf)
			memcpy(buf + done, seg + off, take);
		else
			memcpy(seg + off, buf + done, take);
		done += take;
		off = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t off, void *buf, size_t len)
{
	return iov_copy(iov, n, off, buf, len, true);
}

size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t off, const void *buf,
		    size_t len)
{
	/* iov_copy only reads buf in this direction */
	return iov_copy(iov, n, off, (uint8_t *)buf, len, false);
}
