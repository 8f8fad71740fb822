/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_UTIL_H
#define BUNSHIN_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

/* True when [base, base+len) wraps around the 64-bit address space. */
static inline bool range_overflows(uint64_t base, uint64_t len)
{
	return len && base + len - 1 < base;
}

/*
 * Parses "512", "64M", "1G", "1.5G" is refused; suffixes K M G T (binary,
 * optional trailing 'iB' or 'B'). Returns 0 or -EINVAL / -ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/* Parses a decimal unsigned integer in [min, max]; the whole string must be a number. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Reads a whole file into a malloc'd buffer (at most max bytes). */
int read_file(const char *path, size_t max, uint8_t **data, size_t *len);

/* "52:54:00:12:34:56" (six two-digit hex octets, colons between) into mac: 0 or -EINVAL. */
int parse_mac(const char *s, uint8_t mac[6]);

/*
 * Replaces path all at once: fill(fd, ctx) writes a fresh PATH.tmp, which
 * is fsynced and renamed over path, so a reader (or a crash) sees the old
 * file or the whole new one, never part of it. On any failure the
 * temporary file is removed. 0 or -errno (fill's own, if it failed).
 */
typedef int (*file_fill_fn)(int fd, void *ctx);
int file_write_atomic(const char *path, file_fill_fn fill, void *ctx);

/* pwrite() until all len bytes are written (EINTR and short writes retried): 0 or -errno. */
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/*
 * fd moved to a number at or above FD_SETSIZE (1024), closing the old one,
 * where libraries that still watch their own descriptors with select()
 * (libnftables does) never meet it: with many of ours below 1024, their
 * next socket would be numbered past what select() takes, and glibc aborts.
 * For descriptors held long, one per VM. fd itself when it cannot move
 * (RLIMIT_NOFILE too low).
 */
int fd_move_high(int fd);
/* RLIMIT_NOFILE's soft limit raised to the hard one: 0 or -errno. */
int fd_limit_raise(void);
/*
 * The soft limit as it was before fd_limit_raise(), for a child about to
 * exec a program that expects the usual limit (one that closes every
 * descriptor up to it, or watches with select()). Async-signal-safe.
 */
void fd_limit_restore(void);
/* write() until all len bytes are written (EINTR and short writes retried): 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);

#endif
