// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vmm.h"
#include "machine.h"
#include "block/overlay.h"
#include "snapshot.h"
#include "snapdiff.h"
#include "migrate_disks.h"
#include "sandbox/seccomp.h"
#include "devices/vmgenid.h"
#include "../common/log.h"
#include "../common/util.h"

#define KERNEL_MAX_SIZE (512 * MiB)
#define INITRD_MAX_SIZE (2 * GiB)

void machine_request_stop(struct machine *m, enum machine_stop why)
{
	int cur = atomic_load(&m->stop);
	uint64_t one = 1;

	while (cur < (int)why)
		if (atomic_compare_exchange_weak(&m->stop, &cur, why))
			break;
	if (cur < (int)why && write(m->stop_efd, &one, sizeof(one)) < 0)
		log_warn("stop eventfd: %s", strerror(errno));
}

static void machine_power_event(void *ctx, enum power_event ev)
{
	machine_request_stop(ctx, ev == POWER_OFF ? STOP_POWEROFF : STOP_RESET);
}

static void machine_vcpu_event(void *ctx, unsigned int index, enum vcpu_event ev)
{
	static const enum machine_stop map[] = {
		[VCPU_EVENT_RESET] = STOP_RESET,
		[VCPU_EVENT_POWEROFF] = STOP_POWEROFF,
		[VCPU_EVENT_ERROR] = STOP_ERROR,
	};

	machine_request_stop(ctx, map[ev]);
}

static void machine_irq(struct machine *m, struct irq_line *l, unsigned int gsi)
{
	l->set_level = vm_irq_set_level;
	l->ctx = &m->vm;
	l->gsi = gsi;
}

static void machine_console_input(void *ctx, const uint8_t *buf, size_t len)
{
	struct machine *m = ctx;

	pthread_mutex_lock(&m->console_lock);
	while (!m->console_open)
		pthread_cond_wait(&m->console_cond, &m->console_lock);
	pthread_mutex_unlock(&m->console_lock);
	serial_receive(m->com1, buf, len);
}

/* The guest is built (or teardown has begun): console input may flow. */
static void machine_console_open(struct machine *m)
{
	pthread_mutex_lock(&m->console_lock);
	m->console_open = true;
	pthread_cond_broadcast(&m->console_cond);
	pthread_mutex_unlock(&m->console_lock);
}

/* Ctrl-A x on a stdio console: stop like SIGTERM would, restoring the terminal on the way. */
static void machine_console_quit(void *ctx)
{
	machine_request_stop(ctx, STOP_SIGNAL);
}

static void machine_pci_config(const struct machine *m, struct pci_root_config *pc)
{
	*pc = (struct pci_root_config){
		.ecam_base = LAYOUT_ECAM_BASE,
		.nbuses = LAYOUT_ECAM_SIZE >> 20,
		.mmio32_base = LAYOUT_PCI_MMIO32_BASE,
		.mmio32_end = LAYOUT_PCI_MMIO32_END,
		.mmio64_base = layout_pci_mmio64_base(m->cfg->memory),
		.io_base = LAYOUT_PCI_IO_BASE,
		.io_end = LAYOUT_PCI_IO_END,
	};
	pc->mmio64_end = pc->mmio64_base + LAYOUT_PCI_MMIO64_SIZE;
}

static int machine_create_pci(struct machine *m, struct error *err)
{
	struct pci_root_config pc;

	machine_pci_config(m, &pc);
	m->pci = pci_root_create(&m->pio, &m->mmio, &pc);
	if (!m->pci)
		return error_set(err, ENOMEM, "creating the PCI root complex failed");
	return 0;
}

/* The I/O thread and KVM-side sinks, shared by every virtio device. */
static int machine_create_io(struct machine *m, struct error *err)
{
	m->io = iothread_create("bunshin-io", err);
	if (!m->io)
		return -1;
	m->ioevent = vm_ioevent_create();
	if (!m->ioevent)
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* MSI routes for a device with nqueues queues, and the host view it is built on. */
static int machine_virtio_host(struct machine *m, unsigned int nqueues, struct vm_msi **msi,
			       struct virtio_pci_host *host, struct error *err)
{
	*msi = vm_msi_create(&m->vm, VIRTIO_PCI_MSIX_VECTORS(nqueues));
	if (!*msi)
		return error_set(err, ENOMEM, "out of memory");
	*host = (struct virtio_pci_host){.mem = &m->mem,
					 .io = m->io,
					 .msi = vm_msi_sink(*msi),
					 .ioevent = vm_ioevent_sink(m->ioevent)};
	return 0;
}

static int machine_create_rng(struct machine *m, struct error *err)
{
	struct virtio_pci_host host;

	if (machine_virtio_host(m, VIRTIO_RNG_QUEUES, &m->rng_msi, &host, err))
		return -1;
	m->rng = virtio_rng_create(&host, m->pci, err);
	return m->rng ? 0 : error_wrap(err, "--rng");
}

/*
 * Copy-on-write layers: overlay= over path=, or on a restore the clone's
 * overlay over the snapshot's frozen top; the guest keeps the serial that
 * path= gave it.
 */
static void machine_disk_layers(const struct config_disk *d, struct virtio_blk_opts *o, char *id,
				size_t size)
{
	const char *base = strrchr(d->path, '/');

	if (d->overlay[0])
		o->overlay = d->overlay;
	if (!d->frozen[0])
		return;
	o->path = d->frozen;
	o->image_is_overlay = d->frozen_is_overlay;
	if (!o->id) {
		snprintf(id, size, "%s", base ? base + 1 : d->path);
		o->id = id;
	}
}

/* One --disk: a missing image or one another VM holds fails here, before the guest runs. */
static int machine_create_disk(struct machine *m, unsigned int i, struct error *err)
{
	const struct config_disk *d = &m->cfg->disks[i];
	const struct virtio_blk_limits l = {.iops = d->iops,
					    .iops_burst = d->iops_burst,
					    .bps = d->bps,
					    .bps_burst = d->bps_burst};
	struct virtio_blk_opts o = {.path = d->path,
				    .read_only = d->read_only,
				    .direct = d->direct,
				    .id = d->id[0] ? d->id : NULL,
				    .queues = d->queues,
				    .limits = &l,
				    .unlocked = m->incoming_fd >= 0}; /* the source holds it now */
	char id[CONFIG_DISK_ID + 1];

	machine_disk_layers(d, &o, id, sizeof(id));
	struct virtio_pci_host host;

	if (machine_virtio_host(m, d->queues, &m->blk_msi[i], &host, err))
		return -1;
	m->blk[i] = virtio_blk_create(&host, m->pci, &o, err);
	return m->blk[i] ? 0 : error_wrap(err, "--disk");
}

/* One --net: a tap that cannot be opened fails here. */
static int machine_create_net(struct machine *m, unsigned int i, struct error *err)
{
	const struct config_net *n = &m->cfg->nets[i];
	struct virtio_net_opts o = {.tap = n->tap,
				    .mac = n->has_mac ? n->mac : NULL,
				    .queue_pairs = n->queues,
				    .new_identity = n->replaced};
	struct virtio_pci_host host;

	if (machine_virtio_host(m, virtio_net_num_queues(&o), &m->net_msi[i], &host, err))
		return -1;
	m->net[i] = virtio_net_create(&host, m->pci, &o, err);
	return m->net[i] ? 0 : error_wrap(err, "--net");
}

static int machine_create_vcon(struct machine *m, struct error *err)
{
	struct virtio_pci_host host;

	if (machine_virtio_host(m, VIRTIO_CONSOLE_QUEUES, &m->vcon_msi, &host, err))
		return -1;
	m->vcon = virtio_console_create(&host, m->pci, m->cfg->console_virtio, err);
	return m->vcon ? 0 : error_wrap(err, "--console-virtio");
}

static int machine_create_vsock(struct machine *m, struct error *err)
{
	struct virtio_vsock_opts o = {.guest_cid = m->cfg->vsock.cid,
				      .uds = m->cfg->vsock.uds,
				      .new_identity = m->cfg->vsock.replaced};
	struct virtio_pci_host host;

	if (machine_virtio_host(m, VIRTIO_VSOCK_QUEUES, &m->vsock_msi, &host, err))
		return -1;
	m->vsock = virtio_vsock_create(&host, m->pci, &o, err);
	return m->vsock ? 0 : error_wrap(err, "--vsock");
}

static int machine_create_balloon(struct machine *m, struct error *err)
{
	const struct config_balloon *b = &m->cfg->balloon;
	struct virtio_balloon_opts o = {.target = b->size,
					.stats_period = b->stats_period,
					.free_page_reporting = b->free_page_reporting,
					.deflate_on_oom = b->deflate_on_oom};
	struct virtio_pci_host host;

	if (machine_virtio_host(m, virtio_balloon_num_queues(&o), &m->balloon_msi, &host, err))
		return -1;
	m->balloon = virtio_balloon_create(&host, m->pci, &o, err);
	return m->balloon ? 0 : error_wrap(err, "--balloon");
}

static bool machine_has_virtio(const struct vmm_config *cfg)
{
	return cfg->rng || cfg->ndisks || cfg->nnets || cfg->console_virtio || cfg->vsock.enabled ||
	       cfg->balloon.enabled;
}

/* In a fixed order, so a VM's devices keep their PCI addresses from run to run. */
static int machine_create_virtio(struct machine *m, struct error *err)
{
	const struct vmm_config *cfg = m->cfg;
	int ret;

	if (!machine_has_virtio(cfg))
		return 0;
	ret = machine_create_io(m, err);
	if (!ret && cfg->rng)
		ret = machine_create_rng(m, err);
	for (unsigned int i = 0; !ret && i < cfg->ndisks; i++)
		ret = machine_create_disk(m, i, err);
	for (unsigned int i = 0; !ret && i < cfg->nnets; i++)
		ret = machine_create_net(m, i, err);
	if (!ret && cfg->console_virtio)
		ret = machine_create_vcon(m, err);
	if (!ret && cfg->vsock.enabled)
		ret = machine_create_vsock(m, err);
	if (!ret && cfg->balloon.enabled)
		ret = machine_create_balloon(m, err);
	return ret;
}

static int machine_create_devices(struct machine *m, struct error *err)
{
	int ret;

	bus_init(&m->pio, "pio");
	bus_init(&m->mmio, "mmio");
	m->power.event = machine_power_event;
	m->power.ctx = m;
	machine_irq(m, &m->irq_com1, LAYOUT_COM1_IRQ);
	machine_irq(m, &m->irq_i8042, LAYOUT_I8042_IRQ);
	machine_irq(m, &m->irq_rtc, LAYOUT_RTC_IRQ);
	machine_irq(m, &m->irq_sci, LAYOUT_SCI_IRQ);

	ret = chardev_open(m->cfg->serial, &m->console, err);
	if (ret)
		return error_wrap(err, "--serial");
	m->com1 = serial_create(&m->pio, LAYOUT_COM1_PORT, &m->irq_com1, m->console);
	m->i8042 = i8042_create(&m->pio, &m->irq_i8042, &m->power);
	m->rtc = rtc_create(&m->pio, &m->irq_rtc);
	/* Before the PM device: the root owns 0xcf8-0xcff and forwards the 0xcf9 reset register. */
	ret = machine_create_pci(m, err);
	if (ret)
		return ret;
	m->pm = acpi_pm_create(&m->pio, &m->irq_sci, &m->power);
	if (!m->com1 || !m->i8042 || !m->rtc || !m->pm)
		return error_set(err, ENOMEM, "creating legacy devices failed");
	pci_root_set_reset_register(m->pci, m->pm);
	ret = machine_create_virtio(m, err);
	if (ret)
		return ret;
	chardev_set_quit_handler(m->console, machine_console_quit, m);
	return chardev_start_input(m->console, machine_console_input, m, err);
}

static int machine_build_acpi(struct machine *m, uint64_t *rsdp, struct error *err)
{
	uint32_t *ids = calloc(m->cfg->cpus, sizeof(*ids));
	struct acpi_config acfg = {
		.ncpus = m->cfg->cpus,
		.apic_ids = ids,
		.com1 = true,
		.i8042 = true,
		.rtc = true,
		.ecam_base = LAYOUT_ECAM_BASE,
		.pci_bus_end = (LAYOUT_ECAM_SIZE >> 20) - 1,
		.pci = true,
		.pci_mmio64_base = layout_pci_mmio64_base(m->cfg->memory),
		.pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE,
		.vmgenid_gpa = LAYOUT_VMGENID_GPA,
		.vmgenid_gpe = LAYOUT_VMGENID_GPE,
	};
	uint8_t *buf = gmem_ptr(&m->mem, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE);
	int ret;

	if (!ids)
		return error_set(err, ENOMEM, "out of memory");
	for (unsigned int i = 0; i < m->cfg->cpus; i++)
		ids[i] = topo_apic_id(&m->topo, i);
	ret = acpi_build(&acfg, buf, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, rsdp, err);
	free(ids);
	return ret ? error_wrap(err, "ACPI") : 0;
}

static int machine_load_kernel(struct machine *m, uint64_t rsdp, struct boot_entry *entry,
			       struct error *err)
{
	struct e820_entry e820[E820_MAX_ENTRIES];
	struct boot_input in = {
		.kernel = m->kernel,
		.kernel_len = m->kernel_len,
		.cmdline = m->cfg->cmdline,
		.initrd = m->initrd,
		.initrd_len = m->initrd_len,
		.rsdp_gpa = rsdp,
		.e820 = e820,
		.ram_zeroed = true, /* gmem_init() made a new memfd for this boot */
	};

	in.ne820 = e820_build(m->mem.size, e820, E820_MAX_ENTRIES);
	return boot_load(&m->mem, &in, entry, err);
}

static int machine_create_vcpus(struct machine *m, const struct boot_entry *entry,
				struct error *err)
{
	int ret;

	pthread_mutex_lock(&m->stats_lock);
	m->vcpus = calloc(m->cfg->cpus, sizeof(*m->vcpus));
	pthread_mutex_unlock(&m->stats_lock);
	if (!m->vcpus)
		return error_set(err, ENOMEM, "out of memory");
	m->vcpu_host.pio = &m->pio;
	m->vcpu_host.mmio = &m->mmio;
	m->vcpu_host.event = machine_vcpu_event;
	m->vcpu_host.ctx = m;
	m->vcpu_host.gate = &m->gate;
	for (unsigned int i = 0; i < m->cfg->cpus; i++) {
		ret = vcpu_create(&m->vcpus[i], &m->vm, &m->vcpu_host, &m->topo, i, err);
		if (ret)
			return ret;
		pthread_mutex_lock(&m->stats_lock);
		m->nvcpus_created++;
		pthread_mutex_unlock(&m->stats_lock);
	}
	/* Only the BSP starts at the kernel; APs wait for the guest's INIT/SIPI. */
	return entry ? vcpu_set_boot_state(&m->vcpus[0], entry, err) : 0;
}

/* Builds memory, the KVM VM, firmware tables and vCPUs for one boot. */
static int machine_read_images(struct machine *m, struct error *err)
{
	int ret = read_file(m->cfg->kernel, KERNEL_MAX_SIZE, &m->kernel, &m->kernel_len);

	if (ret == -EFBIG)
		return error_set(err, EFBIG, "kernel %s: larger than %llu MiB", m->cfg->kernel,
				 KERNEL_MAX_SIZE >> 20);
	if (ret)
		return error_set(err, -ret, "kernel %s: %s", m->cfg->kernel,
				 ret == -EINVAL ? "not a regular file" : strerror(-ret));
	if (!m->cfg->initrd)
		return 0;
	ret = read_file(m->cfg->initrd, INITRD_MAX_SIZE, &m->initrd, &m->initrd_len);
	if (ret == -EFBIG)
		return error_set(err, EFBIG, "initrd %s: larger than %llu MiB", m->cfg->initrd,
				 INITRD_MAX_SIZE >> 20);
	if (ret)
		return error_set(err, -ret, "initrd %s: %s", m->cfg->initrd,
				 ret == -EINVAL ? "not a regular file" : strerror(-ret));
	return 0;
}

static const char *machine_restore_opt(const struct machine *m)
{
	return m->incoming_fd >= 0 ? "--incoming" : "--restore";
}

/*
 * A restored machine's first boot: memory, then the VM and vCPUs as a
 * fresh boot makes them (CPUID and all), then the saved state loaded over
 * them. Firmware tables and the kernel are already in the memory image.
 */
static int machine_boot_restored(struct machine *m, struct error *err)
{
	int ret = machine_create_vcpus(m, NULL, err);

	/* The VM and vCPUs were built while the guest still ran on the source. */
	if (!ret && m->incoming_fd >= 0)
		ret = migrate_receive(m, err);
	if (!ret)
		ret = machine_restore_state(m, &m->snap, err);
	/* Restored means possibly duplicated: a new generation ID, announced (after acpi-pm). */
	if (!ret)
		ret = vmgenid_update(gmem_ptr(&m->mem, LAYOUT_VMGENID_GPA, VMGENID_SIZE), m->pm,
				     LAYOUT_VMGENID_GPE, m->vmgenid, err);
	m->vmgenid_set = !ret;
	snap_close(&m->snap);
	m->restore_pending = false;
	return ret ? error_wrap(err, "%s %s", machine_restore_opt(m), m->cfg->restore) : 0;
}

/* A fresh memory image: the VM's generation ID, the same one a reboot had before. */
static int machine_vmgenid_boot(struct machine *m, struct error *err)
{
	uint8_t *dst = gmem_ptr(&m->mem, LAYOUT_VMGENID_GPA, VMGENID_SIZE);

	if (m->vmgenid_set)
		return vmgenid_write(dst, m->vmgenid, err);
	m->vmgenid_set = true;
	return vmgenid_update(dst, NULL, 0, m->vmgenid, err);
}

static int machine_boot_fresh(struct machine *m, struct error *err)
{
	struct boot_entry entry;
	uint64_t rsdp;
	int ret = 0;

	if (!m->kernel) /* a restored machine reads its kernel when the guest reboots */
		ret = machine_read_images(m, err);
	if (!ret)
		ret = machine_build_acpi(m, &rsdp, err);
	if (!ret)
		ret = machine_vmgenid_boot(m, err);
	if (!ret)
		ret = machine_load_kernel(m, rsdp, &entry, err);
	if (!ret)
		ret = machine_create_vcpus(m, &entry, err);
	return ret;
}

static int machine_boot(struct machine *m, struct error *err)
{
	int ret;

	atomic_fetch_add(&m->boots, 1);
	if (m->restore_pending)
		ret = machine_restore_memory(m, err);
	else
		ret = gmem_init(&m->mem, m->cfg->memory, err);
	if (ret)
		return m->restore_pending
			       ? error_wrap(err, "%s %s", machine_restore_opt(m), m->cfg->restore)
			       : ret;
	ret = vm_create(&m->vm, &m->kvm, &m->mem, err);
	if (ret)
		return ret;
	if (m->ioevent)
		vm_ioevent_attach(m->ioevent, m->vm.fd);
	ret = m->restore_pending ? machine_boot_restored(m, err) : machine_boot_fresh(m, err);
	if (ret)
		return ret;
	machine_console_open(m);
	for (unsigned int i = 0; i < m->cfg->cpus; i++) {
		ret = vcpu_start(&m->vcpus[i], err);
		if (ret)
			return ret;
	}
	return 0;
}

static void machine_halt(struct machine *m)
{
	for (unsigned int i = 0; i < m->nvcpus_created; i++)
		vcpu_kick(&m->vcpus[i]);
	for (unsigned int i = 0; i < m->nvcpus_created; i++)
		vcpu_join(&m->vcpus[i]);
	pthread_mutex_lock(&m->stats_lock);
	for (unsigned int i = 0; i < m->nvcpus_created; i++) {
		for (unsigned int r = 0; r < VCPU_EXIT_REASONS; r++)
			m->exit_totals[r] += m->vcpus[i].exits[r];
		vcpu_destroy(&m->vcpus[i]);
	}
	free(m->vcpus);
	m->vcpus = NULL;
	m->nvcpus_created = 0;
	pthread_mutex_unlock(&m->stats_lock);
	/* Device work stops before guest memory goes: queues point into it. */
	if (m->io && !m->io_paused) {
		iothread_pause(m->io);
		m->io_paused = true;
	}
	/* Disk requests in flight write into guest memory when they finish. */
	for (unsigned int i = 0; i < m->cfg->ndisks; i++)
		if (m->blk[i])
			virtio_blk_drain(m->blk[i]);
	if (m->ioevent)
		vm_ioevent_detach(m->ioevent);
	vm_destroy(&m->vm);
	gmem_destroy(&m->mem);
}

/* Waits until a vCPU, a device or a signal asks the machine to stop. */
static enum machine_stop machine_wait(struct machine *m, int sigfd)
{
	struct pollfd fds[2] = {{.fd = m->stop_efd, .events = POLLIN},
				{.fd = sigfd, .events = POLLIN}};

	uint64_t count;

	while (atomic_load(&m->stop) == STOP_NONE) {
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				log_warn("stopping on signal %u", si.ssi_signo);
			machine_request_stop(m, STOP_SIGNAL);
		}
	}
	/* Drain the eventfd so the next boot's wait blocks again. */
	if (read(m->stop_efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("stop eventfd: %s", strerror(errno));
	return atomic_load(&m->stop);
}

static int machine_check_kvm_limits(struct machine *m, struct error *err)
{
	if (m->cfg->cpus > (unsigned int)m->kvm.max_vcpus)
		return error_set(err, ERANGE, "--cpus: %u is more than this KVM supports (%d)",
				 m->cfg->cpus, m->kvm.max_vcpus);
	return 0;
}

static int machine_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits the mask. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

static int machine_exit_status(const struct machine *m, enum machine_stop why)
{
	switch (why) {
	case STOP_POWEROFF:
	case STOP_MIGRATED:
		return VMM_EXIT_POWEROFF;
	case STOP_RESET:
		return VMM_EXIT_REBOOT;
	case STOP_SIGNAL:
		return VMM_EXIT_SIGNAL;
	default:
		return VMM_EXIT_ERROR;
	}
}

/* After a reset the devices hold no guest state: their work may run again. */
static void machine_resume_io(struct machine *m)
{
	if (m->io && m->io_paused) {
		iothread_resume(m->io);
		m->io_paused = false;
	}
}

/* A reboot is a power cycle for the devices too: the next boot finds them as the first did. */
static void machine_reset_devices(struct machine *m)
{
	serial_reset(m->com1);
	i8042_reset(m->i8042);
	rtc_reset(m->rtc);
	acpi_pm_reset(m->pm);
	pci_root_reset(m->pci);
}

static int machine_loop(struct machine *m, int sigfd, struct error *err)
{
	enum machine_stop why;
	int ret;

	for (;;) {
		pthread_mutex_lock(&m->life_lock);
		ret = machine_boot(m, err);
		migrate_incoming_done(m, ret, err->msg);
		if (ret)
			machine_halt(m);
		pthread_mutex_unlock(&m->life_lock);
		if (ret)
			return -1;
		why = machine_wait(m, sigfd);
		pthread_mutex_lock(&m->life_lock);
		machine_halt(m);
		pthread_mutex_unlock(&m->life_lock);
		if (why != STOP_RESET || m->cfg->on_reboot != ON_REBOOT_RESTART)
			return machine_exit_status(m, why);
		/* Fails if a stronger reason (a signal) arrived while halting. */
		if (!atomic_compare_exchange_strong(&m->stop, &(int){STOP_RESET}, STOP_NONE))
			return machine_exit_status(m, atomic_load(&m->stop));
		log_info("guest rebooted; restarting");
		machine_reset_devices(m);
		machine_resume_io(m);
	}
}

/* ---- the control API's view of the machine (called on the API thread) ---- */

static uint64_t machine_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void machine_api_info(void *ctx, struct api_vm_info *out)
{
	struct machine *m = ctx;
	int stop = atomic_load(&m->stop);

	if (!atomic_load(&m->ready)) {
		*out = (struct api_vm_info){
			.state = "not_started", .vcpus = m->cfg->cpus, .memory = m->cfg->memory};
		return;
	}
	out->boots = atomic_load(&m->boots);
	if (stop != STOP_NONE)
		out->state = stop == STOP_RESET ? "rebooting" : "stopping";
	else if (__atomic_load_n(&m->paused, __ATOMIC_RELAXED))
		out->state = "paused";
	else
		out->state = out->boots ? "running" : "starting";
	out->vcpus = m->cfg->cpus;
	out->memory = m->cfg->memory;
	out->uptime_ms = (machine_now_ns() - m->started_ns) / 1000000;
}

static void machine_migrate_info(const struct migrate_stats *st, struct api_migrate_info *out)
{
	*out = (struct api_migrate_info){.total_ms = st->total_ms,
					 .downtime_ms = st->downtime_ms,
					 .bytes = st->bytes,
					 .pages = st->pages,
					 .rounds = st->rounds};
}

/* Exit counters of the running vCPUs are read while they count: each value is one load. */
static void machine_api_metrics(void *ctx, struct api_metrics *out)
{
	struct machine *m = ctx;

	_Static_assert(API_EXIT_REASONS == VCPU_EXIT_REASONS, "exit reason tables differ");
	if (!atomic_load(&m->ready))
		return;
	pthread_mutex_lock(&m->stats_lock);
	for (unsigned int r = 0; r < VCPU_EXIT_REASONS; r++) {
		out->exits[r] = m->exit_totals[r];
		for (unsigned int i = 0; i < m->nvcpus_created; i++)
			out->exits[r] += __atomic_load_n(&m->vcpus[i].exits[r], __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&m->stats_lock);
	out->console_dropped = chardev_dropped(m->console);
	out->ndisks = m->cfg->ndisks;
	for (unsigned int i = 0; i < m->cfg->ndisks; i++) {
		const struct config_disk *d = &m->cfg->disks[i];

		out->disks[i].id = d->id[0] ? d->id : d->path;
		virtio_blk_get_stats(m->blk[i], &out->disks[i].st);
		virtio_blk_get_limits(m->blk[i], &out->disks[i].limits);
	}
	out->nnets = m->cfg->nnets;
	for (unsigned int i = 0; i < m->cfg->nnets; i++) {
		out->nets[i].tap = m->cfg->nets[i].tap;
		virtio_net_get_stats(m->net[i], &out->nets[i].st);
	}
	out->migrations = m->migrations.attempts;
	out->migrations_failed = m->migrations.failed;
	machine_migrate_info(&m->migrations.last, &out->migration);
}

/* With life_lock held: is there a running VM (not between boots, not stopping)? */
static bool machine_is_up(const struct machine *m)
{
	return m->vcpus && atomic_load(&m->stop) == STOP_NONE;
}

/*
 * Exact pause: every vCPU out of KVM_RUN, then no device work (the I/O
 * thread parked, disk requests in flight completed), then the guest clock
 * saved so it resumes where it stopped.
 */
int machine_pause(struct machine *m, struct error *err)
{
	int ret = 0;

	pthread_mutex_lock(&m->life_lock);
	if (m->paused)
		ret = error_set(err, EALREADY, "the VM is already paused");
	else if (!machine_is_up(m))
		ret = error_set(err, EAGAIN,
				"the VM is not running (starting, rebooting or stopping)");
	if (ret)
		goto out;
	vcpu_gate_close(&m->gate, m->vcpus, m->nvcpus_created);
	if (m->io) {
		machine_settle_resets(m);
		iothread_pause(m->io);
	}
	for (unsigned int i = 0; i < m->cfg->ndisks; i++)
		virtio_blk_drain(m->blk[i]);
	ret = vm_clock_save(&m->vm, &m->paused_clock);
	if (ret)
		log_warn("pause: KVM_GET_CLOCK: %s; the guest will see the pause", strerror(-ret));
	m->paused = true;
	ret = 0;
	log_info("paused");
out:
	pthread_mutex_unlock(&m->life_lock);
	return ret;
}

int machine_resume(struct machine *m, struct error *err)
{
	int ret;

	pthread_mutex_lock(&m->life_lock);
	if (!m->paused) {
		pthread_mutex_unlock(&m->life_lock);
		return error_set(err, EALREADY, "the VM is not paused");
	}
	ret = vm_clock_restore(&m->vm, m->paused_clock);
	if (ret)
		log_warn("resume: KVM_SET_CLOCK: %s; the guest sees the pause", strerror(-ret));
	if (m->io)
		iothread_resume(m->io);
	vcpu_gate_open(&m->gate);
	m->paused = false;
	log_info("resumed");
	pthread_mutex_unlock(&m->life_lock);
	return 0;
}

/* ---- configuration through the API, before the first boot ---- */

static void machine_staged_free(struct machine *m)
{
	for (int i = 0; i < m->staged_argc; i++)
		free(m->staged_argv[i]);
	free(m->staged_argv);
	m->staged_argv = NULL;
	m->staged_argc = 0;
}

/* A copy of base's arguments, then those of argv after argv[0]. */
static char **machine_join_args(const struct vmm_config *base, int argc, char **argv, int *n)
{
	char **all = calloc((size_t)(base->argc + argc + 1), sizeof(char *));

	*n = 0;
	if (!all)
		return NULL;
	for (int i = 0; i < base->argc; i++)
		all[(*n)++] = strdup(base->argv[i]);
	for (int i = 1; i < argc; i++)
		all[(*n)++] = strdup(argv[i]);
	for (int i = 0; i < *n; i++) {
		if (!all[i]) {
			for (int j = 0; j < *n; j++)
				free(all[j]);
			free(all);
			return NULL;
		}
	}
	return all;
}

/*
 * This process's own command line (its --api-sock, --verbose, ...) then
 * the options the API was given, parsed as one: the same checks and the
 * same messages as on the command line.
 */
static int machine_api_configure(void *ctx, int argc, char **argv, struct error *err)
{
	struct machine *m = ctx;
	struct vmm_config cfg;
	char **all;
	int n, ret;

	if (m->start_requested)
		return error_set(err, EBUSY, "the VM is started: its configuration is fixed");
	all = machine_join_args(m->base_cfg, argc, argv, &n);
	if (!all)
		return error_set(err, ENOMEM, "out of memory");
	ret = config_parse(&cfg, n, all, m->base_cfg->host_ram, err);
	if (!ret && !cfg.kernel)
		ret = error_set(err, EINVAL, "--kernel is required");
	/* Files are checked now, so a typo is a 400 and not a VM that fails to start. */
	if (!ret && access(cfg.kernel, R_OK))
		ret = error_set(err, errno, "--kernel: %s: %s", cfg.kernel, strerror(errno));
	if (!ret && cfg.initrd && access(cfg.initrd, R_OK))
		ret = error_set(err, errno, "--initrd: %s: %s", cfg.initrd, strerror(errno));
	if (ret) {
		for (int i = 0; i < n; i++)
			free(all[i]);
		free(all);
		return ret;
	}
	machine_staged_free(m);
	m->staged_argv = all;
	m->staged_argc = n;
	m->staged = cfg;
	m->staged_ok = true;
	api_set_config(m->api, &m->staged);
	return 0;
}

static int machine_api_start(struct machine *m, struct error *err);

/*
 * PUT /vm/restore: this process's command line plus `--restore DIR` and
 * the request's identity options, loaded exactly as --restore would be
 * (snapshot_load_config), then started. Only before a start: the first
 * boot restores instead of booting (restore_pending).
 */
static int machine_api_restore(void *ctx, int argc, char **argv, struct error *err)
{
	struct machine *m = ctx;
	struct snapshot_args args = {0};
	struct vmm_config *now = malloc(sizeof(*now)), *out = malloc(sizeof(*out));
	struct snap_file f = {0};
	char **all = NULL;
	int n = 0, ret;

	if (m->start_requested)
		ret = error_set(err, EBUSY, "the VM is started: its configuration is fixed");
	else if (!now || !out || !(all = machine_join_args(m->base_cfg, argc, argv, &n)))
		ret = error_set(err, ENOMEM, "out of memory");
	else
		ret = config_parse(now, n, all, m->base_cfg->host_ram, err);
	if (!ret && snapshot_load_config(now, out, &args, &f, err))
		ret = error_wrap(err, "--restore %s", now->restore);
	if (!ret) {
		/* Nothing staged before changes until here: a refused request changes nothing. */
		machine_staged_free(m);
		snap_close(&m->snap);
		snapshot_args_free(&m->restore_args);
		m->snap = f;
		m->restore_args = args;
		m->staged = *out;
		m->staged_argv = all; /* m->staged.restore points into it */
		m->staged_argc = n;
		m->staged_ok = true;
		m->restore_pending = true;
		all = NULL;
		log_info("restoring the snapshot in %s", m->staged.restore);
		ret = machine_api_start(m, err);
	} else {
		snap_close(&f);
		snapshot_args_free(&args);
	}
	for (int i = 0; all && i < n; i++)
		free(all[i]);
	free(all);
	free(now);
	free(out);
	return ret;
}

static int machine_api_start(struct machine *m, struct error *err)
{
	uint64_t one = 1;

	if (m->start_requested || atomic_load(&m->ready))
		return error_set(err, EALREADY, "the VM is already started");
	if (!m->staged_ok)
		return error_set(err, EAGAIN,
				 "nothing to start: configure the VM first (PUT /vm/config)");
	m->start_requested = true;
	m->cfg = &m->staged;
	api_set_config(m->api, m->cfg);
	if (write(m->start_efd, &one, sizeof(one)) < 0)
		return error_set(err, errno, "start eventfd: %s", strerror(errno));
	return 0;
}

static int machine_api_action(void *ctx, enum api_action a, struct error *err)
{
	struct machine *m = ctx;
	int ret;

	if (a == API_ACTION_START)
		return machine_api_start(m, err);
	if (!atomic_load(&m->ready) && a != API_ACTION_STOP)
		return error_set(err, EAGAIN, "the VM has not been started");
	switch (a) {
	case API_ACTION_POWER_BUTTON:
		acpi_pm_power_button(m->pm);
		return 0;
	case API_ACTION_CTRL_ALT_DEL:
		ret = i8042_ctrl_alt_del(m->i8042);
		if (ret == -EAGAIN)
			return error_set(err, EAGAIN, "the guest has disabled its keyboard");
		if (ret)
			return error_set(err, -ret, "the guest is not reading its keyboard");
		return 0;
	case API_ACTION_STOP:
		log_warn("stopping on API request");
		machine_request_stop(m, STOP_SIGNAL);
		return 0;
	case API_ACTION_PAUSE:
		return machine_pause(m, err);
	case API_ACTION_RESUME:
		return machine_resume(m, err);
	case API_ACTION_START:
		break;
	}
	return error_set(err, EINVAL, "unknown action %d", a);
}

static int machine_api_balloon(void *ctx, uint64_t bytes, struct error *err)
{
	struct machine *m = ctx;

	(void)err;
	if (!m->balloon)
		return -ENODEV;
	virtio_balloon_set_target(m->balloon, bytes);
	return 0;
}

static int machine_api_balloon_stats(void *ctx, struct virtio_balloon_stats *out)
{
	struct machine *m = ctx;

	if (!m->balloon)
		return -ENODEV;
	virtio_balloon_get_stats(m->balloon, out);
	return 0;
}

static int machine_api_snapshot(void *ctx, const char *dir, double *pause_ms, double *total_ms,
				struct error *err)
{
	struct snapshot_info info = {0};
	int ret = machine_snapshot(ctx, dir, &info, err);

	*pause_ms = info.pause_ms;
	*total_ms = info.total_ms;
	return ret;
}

static int machine_api_snapshot_diff(void *ctx, const char *dir, double *pause_ms, double *total_ms,
				     struct error *err)
{
	struct snapshot_info info = {0};
	int ret = machine_snapshot_diff(ctx, dir, &info, err);

	*pause_ms = info.pause_ms;
	*total_ms = info.total_ms;
	return ret;
}

static int machine_api_snapshot_suspend(void *ctx, const char *dir, double *pause_ms,
					double *total_ms, struct error *err)
{
	struct snapshot_info info = {0};
	int ret = machine_snapshot_suspend(ctx, dir, &info, err);

	*pause_ms = info.pause_ms;
	*total_ms = info.total_ms;
	return ret;
}

static int machine_api_migrate(void *ctx, const char *url, struct api_migrate_info *out,
			       struct error *err)
{
	struct machine *m = ctx;
	struct migrate_stats st;
	int ret;

	if (!atomic_load(&m->ready))
		return error_set(err, EAGAIN, "the VM has not been started");
	ret = migrate_disks_check(m, err); /* the disks' layers travel with the state */
	if (ret)
		return ret;
	ret = machine_migrate(m, url, &st, err);
	machine_migrate_info(&st, out);
	return ret;
}

/* A disk by the id the metrics show (id=, else the path), or by its index. */
static struct virtio_blk *machine_api_disk(struct machine *m, const char *name, int *ret)
{
	uint64_t idx;

	*ret = -EAGAIN;
	if (!atomic_load(&m->ready))
		return NULL;
	*ret = 0;
	for (unsigned int i = 0; i < m->cfg->ndisks; i++) {
		const struct config_disk *d = &m->cfg->disks[i];

		if (!strcmp(name, d->id[0] ? d->id : d->path))
			return m->blk[i];
	}
	if (!parse_uint(name, 0, m->cfg->ndisks ? m->cfg->ndisks - 1 : 0, &idx) && m->cfg->ndisks)
		return m->blk[idx];
	*ret = -ENOENT;
	return NULL;
}

static int machine_api_disk_get_limits(void *ctx, const char *disk, struct virtio_blk_limits *out)
{
	int ret;
	struct virtio_blk *blk = machine_api_disk(ctx, disk, &ret);

	if (blk)
		virtio_blk_get_limits(blk, out);
	return ret;
}

static int machine_api_disk_set_limits(void *ctx, const char *disk,
				       const struct virtio_blk_limits *l)
{
	int ret;
	struct virtio_blk *blk = machine_api_disk(ctx, disk, &ret);

	if (blk)
		virtio_blk_set_limits(blk, l);
	return ret;
}

static int machine_start_api(struct machine *m, struct error *err)
{
	const struct api_backend backend = {.ctx = m,
					    .info = machine_api_info,
					    .metrics = machine_api_metrics,
					    .action = machine_api_action,
					    .balloon_target = machine_api_balloon,
					    .balloon_stats = machine_api_balloon_stats,
					    .configure = machine_api_configure,
					    .restore = machine_api_restore,
					    .snapshot = machine_api_snapshot,
					    .disk_get_limits = machine_api_disk_get_limits,
					    .disk_set_limits = machine_api_disk_set_limits,
					    .clone = machine_api_clone,
					    .snapshot_diff = machine_api_snapshot_diff,
					    .snapshot_suspend = machine_api_snapshot_suspend,
					    .migrate = machine_api_migrate};

	if (!m->cfg->api_sock || m->api)
		return 0;
	m->api = api_start(m->cfg->api_sock, m->cfg, &backend, err);
	return m->api ? 0 : error_wrap(err, "--api-sock");
}

static int machine_setup(struct machine *m, struct error *err)
{
	int ret = m->restore_pending ? 0 : machine_read_images(m, err);

	if (!ret)
		ret = kvm_open(&m->kvm, m->cfg->kvm_device, err);
	if (!ret)
		ret = machine_check_kvm_limits(m, err);
	if (!ret)
		ret = vcpu_signal_init();
	if (!ret)
		ret = machine_create_devices(m, err);
	if (!ret) {
		atomic_store(&m->ready, true);
		ret = machine_start_api(m, err);
	}
	return ret;
}

/*
 * Start-up is over (devices, their threads, the API): from here on, before
 * the first guest instruction and for good, every thread runs under the
 * seccomp filter. Reboots, restores and snapshots happen under it.
 */
static int machine_sandbox(struct machine *m, struct error *err)
{
	int ret = sandbox_seccomp_install(m->cfg->seccomp, err);

#ifdef BUNSHIN_TEST_HOOKS
	if (!ret)
		sandbox_seccomp_selftest();
#endif
	return ret;
}

/*
 * --api-sock without --kernel: serve the API and wait for PUT /vm/config
 * and the start action (returns 0), or a stop (returns 1: nothing ran).
 */
static int machine_await_config(struct machine *m, int sigfd, struct error *err)
{
	struct pollfd fds[3] = {{.fd = m->start_efd, .events = POLLIN},
				{.fd = m->stop_efd, .events = POLLIN},
				{.fd = sigfd, .events = POLLIN}};

	if (machine_start_api(m, err))
		return -1;
	log_info("waiting for the configuration on %s", m->cfg->api_sock);
	while (!(fds[0].revents & POLLIN)) {
		if (poll(fds, 3, -1) < 0 && errno != EINTR)
			return error_set(err, errno, "poll: %s", strerror(errno));
		if (fds[2].revents & POLLIN)
			machine_request_stop(m, STOP_SIGNAL);
		if (atomic_load(&m->stop) != STOP_NONE)
			return 1;
	}
	m->topo.cores = m->cfg->cpus;
	return 0;
}

/* The vCPUs are gone (machine_halt); then the I/O thread, then the devices. */
static void machine_teardown(struct machine *m)
{
	api_stop(m->api);	 /* its handlers reach into the devices */
	machine_console_open(m); /* an input thread waiting there must end */
	if (m->io)
		iothread_stop(m->io);
	if (m->com1)
		serial_shutdown(m->com1);
	if (m->console)
		chardev_close(m->console);
	if (m->com1)
		serial_destroy(m->com1);
	if (m->i8042)
		i8042_destroy(m->i8042);
	if (m->rtc)
		rtc_destroy(m->rtc);
	pci_root_destroy(m->pci);
	virtio_rng_destroy(m->rng);
	vm_msi_destroy(m->rng_msi);
	for (unsigned int i = 0; i < m->cfg->ndisks; i++) {
		virtio_blk_destroy(m->blk[i]);
		vm_msi_destroy(m->blk_msi[i]);
	}
	for (unsigned int i = 0; i < m->cfg->nnets; i++) {
		virtio_net_destroy(m->net[i]);
		vm_msi_destroy(m->net_msi[i]);
	}
	virtio_console_destroy(m->vcon);
	vm_msi_destroy(m->vcon_msi);
	virtio_vsock_destroy(m->vsock);
	vm_msi_destroy(m->vsock_msi);
	virtio_balloon_destroy(m->balloon);
	vm_msi_destroy(m->balloon_msi);
	vm_ioevent_destroy(m->ioevent);
	iothread_destroy(m->io);
	if (m->pm)
		acpi_pm_destroy(m->pm);
	bus_destroy(&m->pio);
	bus_destroy(&m->mmio);
	if (m->kvm.fd > 0)
		kvm_close(&m->kvm);
	free(m->kernel);
	free(m->initrd);
	close(m->stop_efd);
}

/* Before any thread exists: the spawner is a fork of this process. */
static void machine_start_spawner(struct machine *m)
{
	struct error err = {0};

	m->spawner.fd = -1;
	if (m->cfg->api_sock && spawner_start(&m->spawner, &err))
		log_warn("%s; PUT /vm/clone will fail", err.msg);
}

/* --restore: the VM to build is the one recorded in the snapshot. */
static int vmm_restore_config(struct machine *m, const struct vmm_config *cfg,
			      struct vmm_config *restored, struct snapshot_args *args)
{
	struct error err = {0};

	if (cfg->incoming) {
		if (migrate_incoming_config(cfg, restored, args, &m->incoming_fd, &err)) {
			log_error("--incoming %s: %s", cfg->incoming, err.msg);
			return -1;
		}
		m->cfg = restored;
		m->restore_pending = true;
		return 0;
	}
	if (!cfg->restore)
		return 0;
	if (snapshot_load_config(cfg, restored, args, &m->snap, &err)) {
		log_error("--restore %s: %s", cfg->restore, err.msg);
		snap_close(&m->snap);
		return -1;
	}
	m->cfg = restored;
	m->restore_pending = true;
	return 0;
}

int vmm_run(const struct vmm_config *cfg)
{
	struct machine *m = calloc(1, sizeof(*m));
	struct snapshot_args args = {0};
	struct vmm_config restored;
	struct error err = {0};
	int sigfd, status;

	if (!m)
		return VMM_EXIT_ERROR;
	m->cfg = cfg;
	m->incoming_fd = -1;
	dirty_init(&m->dirty);
	if (vmm_restore_config(m, cfg, &restored, &args)) {
		snapshot_args_free(&args);
		free(m);
		return VMM_EXIT_ERROR;
	}
	cfg = m->cfg;
	machine_start_spawner(m);
	m->topo = (struct cpu_topology){.threads = 1, .cores = cfg->cpus, .packages = 1};
	m->kvm.fd = -1;
	m->vm.fd = -1;
	m->mem.memfd = -1;
	m->started_ns = machine_now_ns();
	pthread_mutex_init(&m->stats_lock, NULL);
	pthread_mutex_init(&m->life_lock, NULL);
	pthread_mutex_init(&m->console_lock, NULL);
	pthread_cond_init(&m->console_cond, NULL);
	vcpu_gate_init(&m->gate);
	sigfd = machine_signals();
	m->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->start_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sigfd < 0 || m->stop_efd < 0 || m->start_efd < 0) {
		log_error("setting up signal handling: %s", strerror(errno));
		spawner_stop(&m->spawner);
		free(m);
		return VMM_EXIT_ERROR;
	}
	m->base_cfg = cfg;
	status = cfg->kernel || cfg->restore ? 0 : machine_await_config(m, sigfd, &err);
	if (status == 1)
		status = VMM_EXIT_SIGNAL;
	else if (!status)
		status = machine_setup(m, &err);
	if (!status)
		status = machine_sandbox(m, &err);
	if (!status)
		status = machine_loop(m, sigfd, &err);
	if (status < 0) {
		log_error("%s", err.msg);
		migrate_incoming_done(m, status, err.msg); /* the source learns why */
		status = VMM_EXIT_ERROR;
	}
	machine_teardown(m);
	spawner_stop(&m->spawner);
	close(sigfd);
	pthread_mutex_destroy(&m->stats_lock);
	pthread_mutex_destroy(&m->life_lock);
	pthread_mutex_destroy(&m->console_lock);
	pthread_cond_destroy(&m->console_cond);
	vcpu_gate_destroy(&m->gate);
	snap_close(&m->snap);
	snapshot_args_free(&args);
	snapshot_args_free(&m->restore_args);
	machine_staged_free(m);
	if (m->incoming_fd >= 0)
		close(m->incoming_fd);
	dirty_destroy(&m->dirty);
	close(m->start_efd);
	free(m);
	return status;
}
