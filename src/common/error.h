/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_ERROR_H
#define BUNSHIN_COMMON_ERROR_H

/*
 * A small error carrier. Functions deep in the stack fill one in and return
 * a negative errno; only the outermost caller (main, an API handler) prints
 * it, so every failure is reported exactly once, with its context.
 */
struct error {
	int code; /* positive errno, 0 when no error was recorded */
	char msg[256];
};

/* Records the message and returns -code, so callers can `return error_set(...)`. */
int error_set(struct error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes context to an existing message ("loading kernel: <old msg>"). */
int error_wrap(struct error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void error_clear(struct error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}

#endif
