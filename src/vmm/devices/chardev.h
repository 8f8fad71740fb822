/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_CHARDEV_H
#define BUNSHIN_VMM_CHARDEV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../common/error.h"

/*
 * A character backend for consoles: "stdio", "file:PATH" (output only) or
 * "unix:PATH" (a listening socket; one client at a time gets input and
 * output), or "unix:PATH,log=FILE" (the same, and every output byte also
 * appended to FILE, client or not). Output never blocks a vCPU: what
 * cannot be written right now (no client without a log, full socket) is
 * dropped and counted. A second client is refused (closed at once), not
 * let in over the first: whoever is typing keeps the console.
 */
struct chardev;

typedef void (*chardev_sink_fn)(void *ctx, const uint8_t *buf, size_t len);

int chardev_open(const char *spec, struct chardev **out, struct error *err);
/*
 * Stops and joins the input thread first: a sink blocked in its device
 * (serial_receive) must have been released (serial_shutdown) before.
 */
void chardev_close(struct chardev *c);

void chardev_write(struct chardev *c, const uint8_t *buf, size_t len);

/*
 * Starts the input thread: bytes arriving from the backend are handed to
 * sink, which may block until its device has room (that is the flow
 * control). No-op for backends without input.
 */
int chardev_start_input(struct chardev *c, chardev_sink_fn sink, void *ctx, struct error *err);

/*
 * On a stdio backend, Ctrl-A then x asks to quit (as in QEMU); Ctrl-A
 * Ctrl-A sends one Ctrl-A to the guest. The handler runs on the input
 * thread. Without one, the terminal is restored and the process exits 0.
 */
typedef void (*chardev_quit_fn)(void *ctx);
void chardev_set_quit_handler(struct chardev *c, chardev_quit_fn fn, void *ctx);

/* Output bytes dropped so far because the backend could not take them. */
uint64_t chardev_dropped(struct chardev *c);

#endif
