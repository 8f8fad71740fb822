/* SPDX-License-Identifier: MIT */
/*
 * test=identity: what a clone's guest sees of its new identity. Drives the
 * first virtio-net device (configuration only: MAC, STATUS) and the
 * virtio-vsock device (event queue buffers posted), prints the MAC and the
 * CID, then watches: a new MAC in the net device's configuration (with a
 * configuration change interrupt, VEC_VIRTIO_CFG), and a TRANSPORT_RESET
 * on the vsock event queue (virtio 1.2 5.10.6.7), after which it re-reads
 * the CID as a driver must. Either device may be absent (mac=none, cid=0).
 * With identity_announce=1 it drives the net device's control queue
 * instead of vsock (they would share queue memory, see virtio.c), takes
 * GUEST_ANNOUNCE, and acks VIRTIO_NET_S_ANNOUNCE when the MAC changes
 * (announce=acked: the status bit was set, the ack taken, the bit clear).
 *
 *   BUNSHIN-TEST name=identity result=ready mac=M cid=N
 *   BUNSHIN-TEST name=identity result=changed mac=M cid=N cfg_irqs=N resets=N
 *     [announce=acked|none|ack-failed]
 *   BUNSHIN-TEST name=identity result=pass changes=N      (after identity_ms)
 *
 * Options: identity_ms=N (default 60000), identity_announce=1. Fail words: the virtio ones
 * (virtio.c), bad-event.
 */
#include "virtio.h"

#define NET_F_MAC      5
#define NET_F_STATUS   16
#define NET_F_CTRL_VQ  17
#define NET_F_ANNOUNCE 21
#define NET_S_ANNOUNCE 2
#define NET_VQ_CTRL    2 /* one queue pair, no MQ */
#define VS_F_STREAM    0
#define VS_VQ_EVT      2
#define VS_EVT_RESET   0 /* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
#define NET_TYPE       1
#define VSOCK_TYPE     19

static struct virtio_dev net, vs;
static bool has_net, has_vs;
static uint32_t vs_evt[4] __attribute__((aligned(64)));
static uint8_t mac[6];
static uint64_t cid;
static uint32_t resets;
static bool want_announce;
static const char *announce = "none";

static void id_fail(const struct virtio_dev *d)
{
	fail_and_poweroff("identity", d->fail ? d->fail : "virtio");
}

static void read_mac(void)
{
	for (uint32_t i = 0; i < 6; i++)
		mac[i] = virtio_cfg8(&net, i);
}

static void setup_net(void)
{
	if (!virtio_find(&net, NET_TYPE, 0))
		return;
	has_net = true;
	if (!virtio_init(
		    &net,
		    1ULL << NET_F_MAC | 1ULL << NET_F_STATUS |
			    (want_announce ? 1ULL << NET_F_CTRL_VQ | 1ULL << NET_F_ANNOUNCE : 0)))
		id_fail(&net);
	if (want_announce && !virtio_has(&net, NET_F_ANNOUNCE))
		fail_and_poweroff("identity", "no-guest-announce");
	if ((want_announce && !virtio_setup_queue(&net, NET_VQ_CTRL)) || !virtio_driver_ok(&net))
		id_fail(&net);
	read_mac();
}

static void post_event(int i)
{
	struct vbuf b = {&vs_evt[i], sizeof(vs_evt[i]), true};

	if (virtio_submit(&vs, VS_VQ_EVT, &b, 1) < 0)
		id_fail(&vs);
}

static void setup_vsock(void)
{
	if (!virtio_find(&vs, VSOCK_TYPE, 0))
		return;
	has_vs = true;
	if (!virtio_init(&vs, 1ULL << VS_F_STREAM))
		id_fail(&vs);
	for (uint16_t q = 0; q < 3; q++)
		if (!virtio_setup_queue(&vs, q))
			id_fail(&vs);
	if (!virtio_driver_ok(&vs))
		id_fail(&vs);
	cid = virtio_cfg64(&vs, 0);
	for (int i = 0; i < 4; i++)
		post_event(i);
	virtio_kick(&vs, VS_VQ_EVT);
}

/* Events the device sent: TRANSPORT_RESET means "re-read the CID". True if one came. */
static bool drain_events(void)
{
	bool reset = false;
	uint32_t len;
	int id;

	while (has_vs && (id = virtio_get_used(&vs, VS_VQ_EVT, &len)) >= 0) {
		if (len < 4 || vs_evt[id] != VS_EVT_RESET)
			fail_and_poweroff("identity", "bad-event");
		reset = true;
		resets++;
		cid = virtio_cfg64(&vs, 0);
		post_event(id);
		virtio_kick(&vs, VS_VQ_EVT);
	}
	if (has_vs && virtio_needs_reset(&vs))
		id_fail(&vs);
	return reset;
}

static void line_ident(struct line *l)
{
	static const char hex[] = "0123456789abcdef";

	line_str(l, " mac=");
	if (!has_net)
		line_str(l, "none");
	for (int i = 0; has_net && i < 6; i++) {
		if (i)
			line_chr(l, ':');
		line_chr(l, hex[mac[i] >> 4]);
		line_chr(l, hex[mac[i] & 15]);
	}
	line_kv_dec(l, "cid", cid);
}

static void report(const char *result, uint32_t changes)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=identity result=");
	line_str(&l, result);
	line_ident(&l);
	if (changes) {
		line_kv_dec(&l, "cfg_irqs", g_irq_count[VEC_VIRTIO_CFG]);
		line_kv_dec(&l, "resets", resets);
		if (want_announce)
			line_kv_str(&l, "announce", announce);
	}
	line_emit(&l);
}

/* 5.1.6.5.4: the device asks us to announce ourselves; we would send a gratuitous ARP, then ack. */
static void ack_announce(void)
{
	static uint8_t hdr[2] __attribute__((aligned(16))) = {3, 0}; /* CTRL_ANNOUNCE, ACK */
	static uint8_t ack __attribute__((aligned(16)));
	struct vbuf b[2] = {{hdr, sizeof(hdr), false}, {&ack, 1, true}};
	uint32_t written;

	if (!want_announce || !(virtio_cfg16(&net, 6) & NET_S_ANNOUNCE))
		return;
	ack = 0xff;
	if (!virtio_request(&net, NET_VQ_CTRL, b, 2, &written) || ack != 0 ||
	    (virtio_cfg16(&net, 6) & NET_S_ANNOUNCE))
		announce = "ack-failed";
	else
		announce = "acked";
}

static bool mac_changed(void)
{
	uint8_t old[6];

	if (!has_net)
		return false;
	memcpy(old, mac, 6);
	read_mac();
	if (!memcmp(old, mac, 6))
		return false;
	ack_announce();
	return true;
}

void run_identity(void)
{
	uint64_t ms = 60000, deadline;
	uint32_t changes = 0;
	struct line l;

	uint64_t ann = 0;

	opt_u64("identity_ms", 10, &ms);
	want_announce = opt_u64("identity_announce", 10, &ann) && ann;
	lapic_enable();
	setup_net();
	if (!want_announce)
		setup_vsock();
	report("ready", 0);
	deadline = rdtsc() + ms * (tsc_hz() / 1000);
	while ((int64_t)(rdtsc() - deadline) < 0) {
		uint32_t seen =
			g_irq_count[VEC_VIRTIO_CFG] + g_irq_count[VEC_VIRTIO_Q0 + VS_VQ_EVT];
		bool reset = drain_events();

		if (mac_changed() | reset) {
			report("changed", ++changes);
			continue;
		}
		/* one-shot LAPIC timer (~16 ms under KVM) bounds the halt */
		lapic_write(LAPIC_TMR_DIV, 0x3);
		lapic_write(LAPIC_LVT_TMR, VEC_LAPIC_TIMER);
		lapic_write(LAPIC_TMR_INIT, 1000000);
		if (g_irq_count[VEC_VIRTIO_CFG] + g_irq_count[VEC_VIRTIO_Q0 + VS_VQ_EVT] == seen)
			wait_change(&g_irq_count[VEC_LAPIC_TIMER], g_irq_count[VEC_LAPIC_TIMER]);
	}
	/* A change that landed as the time ran out (a clone resumed late) still counts. */
	if (drain_events() | mac_changed())
		report("changed", ++changes);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=identity result=pass");
	line_kv_dec(&l, "changes", changes);
	line_emit(&l);
}
