// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

int error_set(struct error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (code <= 0)
		code = EINVAL;
	if (!err)
		return -code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -code;
}

int error_wrap(struct error *err, const char *fmt, ...)
{
	char prefix[128];
	char old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	if (!err->code)
		err->code = EINVAL;
	return -err->code;
}
