/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER: test=virtio-abuse is written by its device's author. */
#include "virtio.h"

void run_virtio_abuse(void)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-abuse result=fail reason=not-written");
	line_emit(&l);
}
