// SPDX-License-Identifier: MIT
/*
 * The console device (virtio 1.2, section 5.3), one port, no MULTIPORT.
 * transmitq chains go to the character backend; input from the backend is
 * buffered here and copied into the buffers the driver posts on receiveq.
 *
 * Threads: the backend's input thread only ever touches the byte ring
 * below (under con->lock), never guest memory: guest RAM is rebuilt on a
 * reboot while the I/O thread is paused, and only the I/O thread is paused.
 * It wakes the I/O thread by kicking receiveq, which writes the queue's
 * eventfd (registered with the I/O thread by the transport) and touches no
 * transport state, so it needs no transport lock. The receiveq handler,
 * on the I/O thread with the transport's mutex held, moves the bytes into
 * guest buffers; con->lock nests inside that mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../devices/chardev.h"
#include "../devices/state.h"
#include "console.h"
#include "../../common/le.h"

#define VIRTIO_CONSOLE_CLASS 0x078000 /* simple communication controller, other */
#define VIRTIO_CONSOLE_SEGS  128

struct virtio_console {
	struct virtio_pci *vp;
	struct chardev *chr;
	uint64_t tx_bytes; /* I/O thread only */

	pthread_mutex_t lock; /* the input ring and shutdown */
	pthread_cond_t room;  /* the ring drained, or shutdown */
	uint8_t rx[VIRTIO_CONSOLE_RX_BUF];
	size_t rx_head; /* oldest byte */
	size_t rx_len;
	bool shutdown;
	uint64_t rx_bytes;
};

static const uint16_t virtio_console_qmax[] = {VIRTIO_CONSOLE_QSIZE, VIRTIO_CONSOLE_QSIZE};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* ---- the input ring (con->lock held) ---- */

/* Appends what fits of [buf, buf + len); returns how much. */
static size_t rx_put(struct virtio_console *con, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len && con->rx_len < VIRTIO_CONSOLE_RX_BUF) {
		size_t tail = (con->rx_head + con->rx_len) % VIRTIO_CONSOLE_RX_BUF;
		size_t n = min_size(len - done, VIRTIO_CONSOLE_RX_BUF - con->rx_len);

		n = min_size(n, VIRTIO_CONSOLE_RX_BUF - tail);
		memcpy(con->rx + tail, buf + done, n);
		con->rx_len += n;
		done += n;
	}
	return done;
}

/* Moves up to len bytes from the ring to p; returns how many. */
static size_t rx_take(struct virtio_console *con, uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len && con->rx_len) {
		size_t n = min_size(len - done, con->rx_len);

		n = min_size(n, VIRTIO_CONSOLE_RX_BUF - con->rx_head);
		memcpy(p + done, con->rx + con->rx_head, n);
		con->rx_head = (con->rx_head + n) % VIRTIO_CONSOLE_RX_BUF;
		con->rx_len -= n;
		done += n;
	}
	return done;
}

/*
 * The backend's input thread. Blocks while the ring is full: that is the
 * flow control. virtio_console_destroy() releases it before the backend
 * joins the thread.
 */
static void virtio_console_input(void *ctx, const uint8_t *buf, size_t len)
{
	struct virtio_console *con = ctx;

	pthread_mutex_lock(&con->lock);
	while (len && !con->shutdown) {
		size_t n = rx_put(con, buf, len);

		buf += n;
		len -= n;
		if (n)
			virtio_pci_queue_kick(con->vp, VIRTIO_CONSOLE_RXQ);
		if (len)
			pthread_cond_wait(&con->room, &con->lock);
	}
	pthread_mutex_unlock(&con->lock);
}

/* ---- queues (I/O thread, transport mutex held) ---- */

/* Fills the chain's writable segments from the ring; returns the bytes written. */
static uint32_t rx_fill(struct virtio_console *con, const struct virtq_elem *e)
{
	uint32_t done = 0;

	for (unsigned int i = e->out_num; i < e->out_num + e->in_num && con->rx_len; i++)
		done += (uint32_t)rx_take(con, e->iov[i].iov_base, e->iov[i].iov_len);
	return done;
}

static void virtio_console_rx(struct virtio_console *con, struct virtq *vq)
{
	struct iovec iov[VIRTIO_CONSOLE_SEGS];
	struct virtq_elem e = {.iov = iov, .max_segs = VIRTIO_CONSOLE_SEGS};
	struct error err = {0};
	bool more;
	int ret = 0;

	pthread_mutex_lock(&con->lock);
	/* With nothing to deliver, posted buffers stay on the ring for later. */
	for (unsigned int i = 0; i < VIRTIO_CONSOLE_BATCH && con->rx_len; i++) {
		uint32_t n;

		ret = virtq_pop(vq, &e, &err);
		if (ret <= 0)
			break;
		n = rx_fill(con, &e);
		con->rx_bytes += n;
		virtq_push(vq, e.head, n);
	}
	more = con->rx_len != 0;
	pthread_cond_broadcast(&con->room);
	pthread_mutex_unlock(&con->lock);
	virtio_pci_queue_used(con->vp, VIRTIO_CONSOLE_RXQ);
	if (ret < 0)
		virtio_pci_needs_reset(con->vp, err.msg);
	else if (ret > 0 && more && virtq_has_avail(vq))
		virtio_pci_queue_kick(con->vp, VIRTIO_CONSOLE_RXQ);
}

static void virtio_console_tx(struct virtio_console *con, struct virtq *vq)
{
	struct iovec iov[VIRTIO_CONSOLE_SEGS];
	struct virtq_elem e = {.iov = iov, .max_segs = VIRTIO_CONSOLE_SEGS};
	struct error err = {0};
	uint64_t budget = VIRTIO_CONSOLE_TX_BUDGET;
	int ret = 0;

	for (unsigned int i = 0; i < VIRTIO_CONSOLE_BATCH && budget; i++) {
		ret = virtq_pop(vq, &e, &err);
		if (ret <= 0)
			break;
		/* Device-writable segments carry nothing for us and are left alone. */
		for (unsigned int s = 0; s < e.out_num; s++)
			chardev_write(con->chr, e.iov[s].iov_base, e.iov[s].iov_len);
		con->tx_bytes += e.out_len;
		budget -= e.out_len < budget ? e.out_len : budget;
		virtq_push(vq, e.head, 0);
	}
	virtio_pci_queue_used(con->vp, VIRTIO_CONSOLE_TXQ);
	if (ret < 0)
		virtio_pci_needs_reset(con->vp, err.msg);
	else if (ret > 0 && virtq_has_avail(vq))
		virtio_pci_queue_kick(con->vp, VIRTIO_CONSOLE_TXQ);
}

static void virtio_console_notify(struct virtio_pci *vp, unsigned int q, struct virtq *vq)
{
	struct virtio_console *con = virtio_pci_opaque(vp);

	if (q == VIRTIO_CONSOLE_RXQ)
		virtio_console_rx(con, vq);
	else
		virtio_console_tx(con, vq);
}

/* ---- configuration (5.3.4) ---- */

static void virtio_console_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data,
				       uint32_t len)
{
	uint8_t cfg[VIRTIO_CONSOLE_CFG_SIZE] = {0};

	le_put(cfg + VIRTIO_CONSOLE_CFG_COLS, 2, VIRTIO_CONSOLE_DEFAULT_COLS);
	le_put(cfg + VIRTIO_CONSOLE_CFG_ROWS, 2, VIRTIO_CONSOLE_DEFAULT_ROWS);
	le_put(cfg + VIRTIO_CONSOLE_CFG_MAX_PORTS, 4, 1);
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(data, cfg + off, len);
}

/* emerg_wr is only there with EMERG_WRITE, which is not offered: writes are ignored. */
static void virtio_console_config_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data,
					uint32_t len)
{
}

/* ---- snapshot: the input not yet delivered (u32 version, u32 length, bytes) ---- */

#define VIRTIO_CONSOLE_STATE_VERSION 1

static void virtio_console_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_console *con = virtio_pci_opaque(vp);

	pthread_mutex_lock(&con->lock);
	snap_put_u32(w, VIRTIO_CONSOLE_STATE_VERSION);
	snap_put_u32(w, (uint32_t)con->rx_len);
	for (size_t i = 0; i < con->rx_len; i++)
		snap_put_u8(w, con->rx[(con->rx_head + i) % VIRTIO_CONSOLE_RX_BUF]);
	pthread_mutex_unlock(&con->lock);
}

/*
 * The saved input comes first; what the new backend got before the restore
 * (a client that connected and typed at once) follows it, as much as fits.
 */
static int virtio_console_restore(struct virtio_pci *vp, struct snap_section *s, const char *name,
				  struct error *err)
{
	struct virtio_console *con = virtio_pci_opaque(vp);
	uint32_t version = snap_get_u32(s), len = snap_get_u32(s);
	uint8_t *saved;

	if (version != VIRTIO_CONSOLE_STATE_VERSION)
		return state_bad(err, name, "console state version", version);
	if (len > VIRTIO_CONSOLE_RX_BUF)
		return state_bad(err, name, "console input length", len);
	saved = malloc(VIRTIO_CONSOLE_RX_BUF);
	if (!saved)
		return error_set(err, ENOMEM, "state section '%s': out of memory", name);
	snap_get_bytes(s, saved, len);
	pthread_mutex_lock(&con->lock);
	for (size_t i = 0; i < con->rx_len && len < VIRTIO_CONSOLE_RX_BUF; i++)
		saved[len++] = con->rx[(con->rx_head + i) % VIRTIO_CONSOLE_RX_BUF];
	con->rx_head = 0;
	con->rx_len = 0;
	rx_put(con, saved, len);
	pthread_cond_broadcast(&con->room);
	pthread_mutex_unlock(&con->lock);
	free(saved);
	return 0;
}

static const struct virtio_device_ops virtio_console_ops = {
	.config_read = virtio_console_config_read,
	.config_write = virtio_console_config_write,
	.queue_notify = virtio_console_notify,
	.save = virtio_console_save,
	.restore = virtio_console_restore,
};

/* ---- life cycle ---- */

static int virtio_console_start(struct virtio_console *con, const struct virtio_pci_host *host,
				struct pci_root *root, const char *backend, struct error *err)
{
	struct virtio_device_info info = {
		.name = "virtio-console",
		.device_id = VIRTIO_ID_CONSOLE,
		.class_code = VIRTIO_CONSOLE_CLASS,
		.features = 1ULL << VIRTIO_CONSOLE_F_SIZE,
		.config_size = VIRTIO_CONSOLE_CFG_SIZE,
		.num_queues = VIRTIO_CONSOLE_QUEUES,
		.queue_max = virtio_console_qmax,
		.ops = &virtio_console_ops,
		.opaque = con,
	};
	int ret = chardev_open(backend, &con->chr, err);

	if (ret)
		return ret;
	con->vp = virtio_pci_create(&info, host, err);
	if (!con->vp)
		return -err->code;
	ret = virtio_pci_register(con->vp, root, err);
	if (ret)
		return ret;
	/* Last: input kicks receiveq, whose eventfd exists from here on. */
	return chardev_start_input(con->chr, virtio_console_input, con, err);
}

struct virtio_console *virtio_console_create(const struct virtio_pci_host *host,
					     struct pci_root *root, const char *backend,
					     struct error *err)
{
	struct virtio_console *con = calloc(1, sizeof(*con));

	if (!con) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&con->lock, NULL);
	pthread_cond_init(&con->room, NULL);
	if (virtio_console_start(con, host, root, backend, err)) {
		virtio_console_destroy(con);
		return NULL;
	}
	return con;
}

void virtio_console_destroy(struct virtio_console *con)
{
	if (!con)
		return;
	/* Releases an input thread waiting for room, so closing the backend can join it. */
	pthread_mutex_lock(&con->lock);
	con->shutdown = true;
	pthread_cond_broadcast(&con->room);
	pthread_mutex_unlock(&con->lock);
	chardev_close(con->chr);
	virtio_pci_destroy(con->vp);
	log_debug("virtio-console: %llu bytes out, %llu in", (unsigned long long)con->tx_bytes,
		  (unsigned long long)con->rx_bytes);
	pthread_cond_destroy(&con->room);
	pthread_mutex_destroy(&con->lock);
	free(con);
}

struct virtio_pci *virtio_console_transport(struct virtio_console *con)
{
	return con->vp;
}
