/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER: test=virtio-console is written by its device's author. */
#include "virtio.h"

void run_virtio_console(void)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-console result=fail reason=not-written");
	line_emit(&l);
}
