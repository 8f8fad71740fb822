// SPDX-License-Identifier: MIT
/*
 * PCI root complex: configuration space through ECAM and mechanism #1,
 * type 0 headers with per-byte write masks, BAR sizing, assignment and
 * decoding (a BAR's range is on the bus exactly while the guest has it
 * enabled), and the capability list. Register layouts follow the PCI Local
 * Bus specification 3.0 and the PCI Express base specification (ECAM).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../../common/util.h"
#include "../layout.h"
#include "legacy.h"
#include "msix.h"
#include "pci.h"
#include "pci_internal.h"
#include "../../common/le.h"

#define PCI_CF8_ENABLE 0x80000000u
/* Enable, bus, device, function and register bits 7:2; the rest reads 0. */
#define PCI_CF8_MASK   0x80fffffcu
#define PCI_CF8_PORT   0xcf8
#define PCI_CF8_LEN    8
#define PCI_CFC_OFFSET 4 /* data port 0xcfc, as an offset in our range */

#define PCI_STATUS_W1C                                                                             \
	(PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |           \
	 PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)
#define PCI_COMMAND_WRITABLE                                                                       \
	(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |           \
	 PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)

/* ---- config space bytes, device side ---- */

void pci_config_set8(struct pci_device *dev, uint32_t off, uint8_t v)
{
	if (off < PCI_CFG_SIZE)
		dev->cfg[off] = v;
}

void pci_config_set16(struct pci_device *dev, uint32_t off, uint16_t v)
{
	if (off <= PCI_CFG_SIZE - 2)
		le_put(dev->cfg + off, 2, v);
}

void pci_config_set32(struct pci_device *dev, uint32_t off, uint32_t v)
{
	if (off <= PCI_CFG_SIZE - 4)
		le_put(dev->cfg + off, 4, v);
}

uint8_t pci_config_get8(const struct pci_device *dev, uint32_t off)
{
	return off < PCI_CFG_SIZE ? dev->cfg[off] : 0xff;
}

uint16_t pci_config_get16(const struct pci_device *dev, uint32_t off)
{
	return off <= PCI_CFG_SIZE - 2 ? (uint16_t)le_get(dev->cfg + off, 2) : 0xffff;
}

uint32_t pci_config_get32(const struct pci_device *dev, uint32_t off)
{
	return off <= PCI_CFG_SIZE - 4 ? (uint32_t)le_get(dev->cfg + off, 4) : 0xffffffffu;
}

void pci_config_set_wmask(struct pci_device *dev, uint32_t off, uint32_t len, uint64_t mask)
{
	if (len <= 8 && off <= PCI_CFG_SIZE - len)
		le_put(dev->wmask + off, len, mask);
}

void pci_config_set_w1c(struct pci_device *dev, uint32_t off, uint32_t len, uint64_t mask)
{
	if (len <= 8 && off <= PCI_CFG_SIZE - len)
		le_put(dev->w1c + off, len, mask);
}

void pci_device_init(struct pci_device *dev, uint16_t vendor, uint16_t device, uint32_t class_code,
		     uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(dev->cfg, 0, sizeof(dev->cfg));
	memset(dev->wmask, 0, sizeof(dev->wmask));
	memset(dev->w1c, 0, sizeof(dev->w1c));
	memset(dev->bars, 0, sizeof(dev->bars));
	dev->root = NULL;
	dev->msix = NULL;
	dev->reset_cfg = NULL;
	pci_config_set16(dev, PCI_VENDOR_ID, vendor);
	pci_config_set16(dev, PCI_DEVICE_ID, device);
	pci_config_set8(dev, PCI_REVISION_ID, revision);
	pci_config_set8(dev, PCI_CLASS_PROG, class_code & 0xff);
	pci_config_set16(dev, PCI_CLASS_DEVICE, (uint16_t)(class_code >> 8));
	pci_config_set16(dev, PCI_SUBSYSTEM_VENDOR, subsys_vendor);
	pci_config_set16(dev, PCI_SUBSYSTEM_ID, subsys_id);
	pci_config_set_wmask(dev, PCI_COMMAND, 2, PCI_COMMAND_WRITABLE);
	pci_config_set_w1c(dev, PCI_STATUS, 2, PCI_STATUS_W1C);
	/* Meaningless to a virtual device, but software expects to write them. */
	pci_config_set_wmask(dev, PCI_CACHE_LINE_SIZE, 1, 0xff);
	pci_config_set_wmask(dev, PCI_LATENCY_TIMER, 1, 0xff);
	pci_config_set_wmask(dev, PCI_INTERRUPT_LINE, 1, 0xff);
	dev->cap_next = PCI_CFG_HDR_END;
	dev->cap_link = PCI_CAPABILITY_LIST;
}

/* ---- BARs ---- */

static uint32_t pci_bar_reg(unsigned int index)
{
	return PCI_BASE_ADDRESS_0 + 4 * index;
}

static bool pci_bar_size_ok(enum pci_bar_type type, uint64_t size)
{
	if (!size || (size & (size - 1)))
		return false;
	switch (type) {
	case PCI_BAR_IO:
		return size >= 4 && size <= 256;
	case PCI_BAR_MEM32:
		return size >= 16 && size <= (1ULL << 31);
	case PCI_BAR_MEM64:
		return size >= 16 && size <= (1ULL << 62);
	default:
		return false;
	}
}

/* The BAR slot (or the upper half of a 64-bit BAR) is already in use. */
static bool pci_bar_taken(const struct pci_device *dev, unsigned int index)
{
	if (dev->bars[index].type != PCI_BAR_UNUSED)
		return true;
	return index > 0 && dev->bars[index - 1].type == PCI_BAR_MEM64;
}

int pci_device_add_bar(struct pci_device *dev, unsigned int index, enum pci_bar_type type,
		       uint64_t size, bool prefetchable)
{
	struct pci_bar *b;
	uint32_t flags;

	if (index >= PCI_NUM_BARS || !pci_bar_size_ok(type, size) || dev->root)
		return -EINVAL;
	if (pci_bar_taken(dev, index))
		return -EINVAL;
	if (type == PCI_BAR_MEM64 && (index + 1 >= PCI_NUM_BARS || pci_bar_taken(dev, index + 1)))
		return -EINVAL;
	b = &dev->bars[index];
	b->type = type;
	b->size = size;
	b->prefetchable = type != PCI_BAR_IO && prefetchable;
	b->dev = dev;
	b->index = index;
	if (type == PCI_BAR_IO) {
		flags = PCI_BAR_SPACE_IO;
		/* 16-bit I/O decode: the upper half reads 0 and sizes as such. */
		pci_config_set_wmask(dev, pci_bar_reg(index), 4, ~(size - 1) & 0xfffcu);
	} else {
		flags = (type == PCI_BAR_MEM64 ? PCI_BAR_MEM_TYPE_64 : 0) |
			(b->prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
		pci_config_set_wmask(dev, pci_bar_reg(index), 4, ~(size - 1) & 0xfffffff0u);
		if (type == PCI_BAR_MEM64)
			pci_config_set_wmask(dev, pci_bar_reg(index + 1), 4,
					     (uint32_t)(~(size - 1) >> 32));
	}
	pci_config_set32(dev, pci_bar_reg(index), flags);
	return 0;
}

/* The address the BAR registers hold now. */
static uint64_t pci_bar_programmed(const struct pci_device *dev, unsigned int index)
{
	uint32_t lo = pci_config_get32(dev, pci_bar_reg(index));

	switch (dev->bars[index].type) {
	case PCI_BAR_IO:
		return lo & ~0x3u;
	case PCI_BAR_MEM32:
		return lo & ~0xfu;
	case PCI_BAR_MEM64:
		return (lo & ~0xfu) | (uint64_t)pci_config_get32(dev, pci_bar_reg(index + 1)) << 32;
	default:
		return 0;
	}
}

/* Where the BAR should decode given command and address; false if nowhere. */
static bool pci_bar_target(const struct pci_device *dev, unsigned int index, uint64_t *addr)
{
	const struct pci_bar *b = &dev->bars[index];
	uint16_t cmd = pci_config_get16(dev, PCI_COMMAND);
	uint64_t a = pci_bar_programmed(dev, index);

	*addr = a;
	if (b->type == PCI_BAR_UNUSED || a == 0)
		return false;
	if (b->type == PCI_BAR_IO)
		return (cmd & PCI_COMMAND_IO) && a + b->size <= 0x10000;
	if (!(cmd & PCI_COMMAND_MEMORY))
		return false;
	if (b->type == PCI_BAR_MEM32)
		return a + b->size <= (1ULL << 32);
	return !range_overflows(a, b->size);
}

static void pci_bar_io_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_bar *b = opaque;
	struct pci_device *dev = b->dev;

	if (dev->msix && msix_bar_read(dev->msix, b->index, off, data, len))
		return;
	memset(data, 0, len);
	if (dev->ops && dev->ops->bar_read)
		dev->ops->bar_read(dev, b->index, off, data, len);
}

static void pci_bar_io_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_bar *b = opaque;
	struct pci_device *dev = b->dev;

	if (dev->msix && msix_bar_write(dev->msix, b->index, off, data, len))
		return;
	if (dev->ops && dev->ops->bar_write)
		dev->ops->bar_write(dev, b->index, off, data, len);
}

static const struct bus_ops pci_bar_ops = {.read = pci_bar_io_read, .write = pci_bar_io_write};

static struct bus *pci_bar_bus(const struct pci_device *dev, const struct pci_bar *b)
{
	return b->type == PCI_BAR_IO ? dev->root->pio : dev->root->mmio;
}

static void pci_bar_unmap(struct pci_device *dev, struct pci_bar *b)
{
	if (!b->mapped)
		return;
	bus_unregister(pci_bar_bus(dev, b), b->mapped_at);
	b->mapped = false;
}

/*
 * Puts the BAR's range where command and address say. A guest may point a
 * BAR at something else (or at a half-written 64-bit address); that
 * range then stays unmapped, as a conflicting decode would be undefined.
 */
static void pci_bar_update(struct pci_device *dev, unsigned int index)
{
	struct pci_bar *b = &dev->bars[index];
	char name[64];
	uint64_t addr;
	bool want = pci_bar_target(dev, index, &addr);
	bool was_mapped = b->mapped;
	int ret;

	if (b->mapped && want && b->mapped_at == addr)
		return;
	pci_bar_unmap(dev, b);
	if (want) {
		snprintf(name, sizeof(name), "%s-bar%u", dev->name ? dev->name : "pci", index);
		ret = bus_register(pci_bar_bus(dev, b), addr, b->size, &pci_bar_ops, b, name);
		if (ret)
			log_debug("pci: %s at 0x%llx not decoded: %s", name,
				  (unsigned long long)addr, strerror(-ret));
		b->mapped = ret == 0;
		b->mapped_at = addr;
	}
	if ((was_mapped || b->mapped) && dev->ops && dev->ops->bar_moved)
		dev->ops->bar_moved(dev, index, b->mapped ? b->mapped_at : 0);
}

void pci_bars_update(struct pci_device *dev)
{
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
		pci_bar_update(dev, i);
}

uint64_t pci_bar_address(struct pci_device *dev, unsigned int index)
{
	uint64_t addr = 0;

	if (index >= PCI_NUM_BARS || !dev->root)
		return 0;
	pthread_mutex_lock(&dev->root->lock);
	if (dev->bars[index].mapped)
		addr = dev->bars[index].mapped_at;
	pthread_mutex_unlock(&dev->root->lock);
	return addr;
}

/* ---- capabilities ---- */

int pci_add_capability(struct pci_device *dev, uint8_t id, uint8_t len)
{
	unsigned int off = dev->cap_next;
	unsigned int size = (len + 3u) & ~3u;

	if (len < 2 || dev->root || off + size > PCI_CFG_LEGACY)
		return -ENOSPC;
	pci_config_set8(dev, off, id);
	pci_config_set8(dev, off + 1, 0);
	pci_config_set8(dev, dev->cap_link, (uint8_t)off);
	pci_config_set16(dev, PCI_STATUS, pci_config_get16(dev, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	dev->cap_link = (uint16_t)(off + 1);
	dev->cap_next = (uint16_t)(off + size);
	return (int)off;
}

/* ---- guest configuration accesses (root lock held) ---- */

static bool pci_overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t end)
{
	return off < end && off + len > start;
}

static void pci_cfg_read(struct pci_device *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	memcpy(data, dev->cfg + off, len);
	if (dev->ops && dev->ops->config_read)
		dev->ops->config_read(dev, off, data, len);
}

static void pci_cfg_write(struct pci_device *dev, uint32_t off, const uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint8_t *c = &dev->cfg[off + i];
		uint8_t wm = dev->wmask[off + i], w1c = dev->w1c[off + i];

		*c = (uint8_t)(((*c & ~wm) | (data[i] & wm)) & ~(data[i] & w1c));
	}
	if (pci_overlaps(off, len, PCI_COMMAND, PCI_COMMAND + 2) ||
	    pci_overlaps(off, len, PCI_BASE_ADDRESS_0, pci_bar_reg(PCI_NUM_BARS)))
		pci_bars_update(dev);
	if (dev->msix)
		msix_config_written(dev->msix, off, len);
	if (dev->ops && dev->ops->config_write)
		dev->ops->config_write(dev, off, data, len);
}

/* Configuration cycles must stay inside one dword, as on real root complexes. */
static bool pci_cfg_access_ok(uint32_t reg, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4) && (reg & 3) + len <= 4;
}

static struct pci_device *pci_find(struct pci_root *root, unsigned int bus, unsigned int slot,
				   unsigned int fn)
{
	if (bus != 0 || fn != 0 || slot >= PCI_SLOTS)
		return NULL;
	return root->slots[slot];
}

static void pci_root_cfg_read(struct pci_root *root, unsigned int bus, unsigned int slot,
			      unsigned int fn, uint32_t reg, uint8_t *data, uint32_t len)
{
	struct pci_device *dev;

	memset(data, 0xff, len);
	if (!pci_cfg_access_ok(reg, len))
		return;
	pthread_mutex_lock(&root->lock);
	dev = pci_find(root, bus, slot, fn);
	if (dev)
		pci_cfg_read(dev, reg, data, len);
	pthread_mutex_unlock(&root->lock);
}

static void pci_root_cfg_write(struct pci_root *root, unsigned int bus, unsigned int slot,
			       unsigned int fn, uint32_t reg, const uint8_t *data, uint32_t len)
{
	struct pci_device *dev;

	if (!pci_cfg_access_ok(reg, len))
		return;
	pthread_mutex_lock(&root->lock);
	dev = pci_find(root, bus, slot, fn);
	if (dev)
		pci_cfg_write(dev, reg, data, len);
	pthread_mutex_unlock(&root->lock);
}

/* ---- ECAM: bus[27:20] device[19:15] function[14:12] register[11:0] ---- */

static void pci_ecam_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	pci_root_cfg_read(opaque, (off >> 20) & 0xff, (off >> 15) & 0x1f, (off >> 12) & 7,
			  off & 0xfff, data, len);
}

static void pci_ecam_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	pci_root_cfg_write(opaque, (off >> 20) & 0xff, (off >> 15) & 0x1f, (off >> 12) & 7,
			   off & 0xfff, data, len);
}

static const struct bus_ops pci_ecam_ops = {.read = pci_ecam_read, .write = pci_ecam_write};

/* ---- mechanism #1: 0xcf8 address (dword only), 0xcfc-0xcff data ---- */

static bool pci_cf8_decode(struct pci_root *root, uint64_t off, unsigned int *bus,
			   unsigned int *slot, unsigned int *fn, uint32_t *reg)
{
	uint32_t a;

	pthread_mutex_lock(&root->lock);
	a = root->cf8;
	pthread_mutex_unlock(&root->lock);
	if (!(a & PCI_CF8_ENABLE))
		return false;
	*bus = (a >> 16) & 0xff;
	*slot = (a >> 11) & 0x1f;
	*fn = (a >> 8) & 7;
	*reg = (a & 0xfc) + (uint32_t)(off - PCI_CFC_OFFSET);
	return true;
}

static void pci_ports_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_root *root = opaque;
	unsigned int bus, slot, fn;
	uint32_t reg;

	memset(data, 0xff, len);
	if (off >= PCI_CFC_OFFSET) {
		if (pci_cf8_decode(root, off, &bus, &slot, &fn, &reg))
			pci_root_cfg_read(root, bus, slot, fn, reg, data, len);
	} else if (off == 0 && len == 4) {
		pthread_mutex_lock(&root->lock);
		le_put(data, 4, root->cf8);
		pthread_mutex_unlock(&root->lock);
	} else if (off == LAYOUT_RESET_PORT - PCI_CF8_PORT && len == 1 && root->pm) {
		data[0] = acpi_pm_reset_read(root->pm);
	}
}

static void pci_ports_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_root *root = opaque;
	unsigned int bus, slot, fn;
	uint32_t reg;

	if (off >= PCI_CFC_OFFSET) {
		if (pci_cf8_decode(root, off, &bus, &slot, &fn, &reg))
			pci_root_cfg_write(root, bus, slot, fn, reg, data, len);
	} else if (off == 0 && len == 4) {
		pthread_mutex_lock(&root->lock);
		root->cf8 = (uint32_t)le_get(data, 4) & PCI_CF8_MASK;
		pthread_mutex_unlock(&root->lock);
	} else if (off == LAYOUT_RESET_PORT - PCI_CF8_PORT && len == 1 && root->pm) {
		acpi_pm_reset_write(root->pm, data[0]);
	}
}

static const struct bus_ops pci_ports_ops = {.read = pci_ports_read, .write = pci_ports_write};

void pci_root_set_reset_register(struct pci_root *root, struct acpi_pm *pm)
{
	root->pm = pm;
}

/* ---- registration and BAR assignment ---- */

/* Bump allocation, aligned to size as BAR decoding requires. */
static int pci_alloc(uint64_t *next, uint64_t end, uint64_t size, uint64_t *addr)
{
	uint64_t a = align_up(*next, size);

	if (a < *next || a > end || size > end - a)
		return -ENOSPC;
	*addr = a;
	*next = a + size;
	return 0;
}

/*
 * Non-prefetchable 64-bit BARs stay below 4 GiB: guests may only map the
 * low window (the test guest does), and a 64-bit BAR is free to live there.
 */
static int pci_assign_bar(struct pci_root *root, struct pci_device *dev, unsigned int i)
{
	struct pci_bar *b = &dev->bars[i];
	struct pci_root_config *c = &root->cfg;
	uint64_t addr;
	int ret;

	if (b->type == PCI_BAR_IO)
		ret = pci_alloc(&root->next_io, c->io_end, b->size, &addr);
	else if (b->type == PCI_BAR_MEM64 && b->prefetchable && c->mmio64_end > c->mmio64_base)
		ret = pci_alloc(&root->next_mmio64, c->mmio64_end, b->size, &addr);
	else
		ret = pci_alloc(&root->next_mmio32, c->mmio32_end, b->size, &addr);
	if (ret)
		return ret;
	pci_config_set32(dev, pci_bar_reg(i),
			 pci_config_get32(dev, pci_bar_reg(i)) | (uint32_t)addr);
	if (b->type == PCI_BAR_MEM64)
		pci_config_set32(dev, pci_bar_reg(i + 1), (uint32_t)(addr >> 32));
	return 0;
}

/* As firmware leaves it: resources assigned and decoded, bus mastering off. */
static int pci_assign(struct pci_root *root, struct pci_device *dev)
{
	uint16_t cmd = 0;
	int ret;

	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		if (dev->bars[i].type == PCI_BAR_UNUSED)
			continue;
		ret = pci_assign_bar(root, dev, i);
		if (ret)
			return ret;
		cmd |= dev->bars[i].type == PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
	}
	pci_config_set16(dev, PCI_COMMAND, pci_config_get16(dev, PCI_COMMAND) | cmd);
	return 0;
}

static int pci_register_locked(struct pci_root *root, struct pci_device *dev, unsigned int slot)
{
	int ret;

	if (root->slots[slot])
		return -EBUSY;
	dev->reset_cfg = malloc(PCI_CFG_SIZE);
	if (!dev->reset_cfg)
		return -ENOMEM;
	ret = pci_assign(root, dev);
	if (ret) {
		free(dev->reset_cfg);
		dev->reset_cfg = NULL;
		return ret;
	}
	memcpy(dev->reset_cfg, dev->cfg, PCI_CFG_SIZE);
	dev->root = root;
	dev->slot = slot;
	root->slots[slot] = dev;
	pci_bars_update(dev);
	return (int)slot;
}

int pci_register_device(struct pci_root *root, struct pci_device *dev)
{
	int ret = -ENOSPC;

	if (dev->root)
		return -EBUSY;
	pthread_mutex_lock(&root->lock);
	for (unsigned int slot = 1; slot < PCI_SLOTS; slot++) {
		if (!root->slots[slot]) {
			ret = pci_register_locked(root, dev, slot);
			break;
		}
	}
	pthread_mutex_unlock(&root->lock);
	if (ret < 0)
		log_error("pci: cannot register %s: %s", dev->name ? dev->name : "device",
			  strerror(-ret));
	return ret;
}

static void pci_device_reset(struct pci_device *dev)
{
	memcpy(dev->cfg, dev->reset_cfg, PCI_CFG_SIZE);
	pci_bars_update(dev);
	if (dev->msix)
		msix_reset(dev->msix);
	if (dev->ops && dev->ops->reset)
		dev->ops->reset(dev);
}

void pci_root_reset(struct pci_root *root)
{
	pthread_mutex_lock(&root->lock);
	root->cf8 = 0;
	for (unsigned int slot = 0; slot < PCI_SLOTS; slot++)
		if (root->slots[slot])
			pci_device_reset(root->slots[slot]);
	pthread_mutex_unlock(&root->lock);
}

/* ---- the root itself ---- */

static int pci_root_claim(struct pci_root *root)
{
	int ret =
		bus_register(root->pio, PCI_CF8_PORT, PCI_CF8_LEN, &pci_ports_ops, root, "pci-cf8");

	if (ret)
		return ret;
	root->ports_claimed = true;
	ret = bus_register(root->mmio, root->cfg.ecam_base, (uint64_t)root->cfg.nbuses << 20,
			   &pci_ecam_ops, root, "pci-ecam");
	if (ret)
		return ret;
	root->ecam_claimed = true;
	return 0;
}

static void pci_host_bridge(struct pci_root *root)
{
	struct pci_device *h = &root->host;

	pci_device_init(h, PCI_HOST_BRIDGE_VENDOR, PCI_HOST_BRIDGE_DEVICE, PCI_CLASS_BRIDGE_HOST, 0,
			PCI_HOST_BRIDGE_VENDOR, PCI_HOST_BRIDGE_DEVICE);
	h->name = "host-bridge";
	pci_register_locked(root, h, 0);
}

struct pci_root *pci_root_create(struct bus *pio, struct bus *mmio,
				 const struct pci_root_config *cfg)
{
	struct pci_root *root;

	if (!cfg->nbuses || cfg->nbuses > 256 || (cfg->ecam_base & ((1ULL << 20) - 1)))
		return NULL;
	root = calloc(1, sizeof(*root));
	if (!root)
		return NULL;
	pthread_mutex_init(&root->lock, NULL);
	root->pio = pio;
	root->mmio = mmio;
	root->cfg = *cfg;
	root->next_mmio32 = cfg->mmio32_base;
	root->next_mmio64 = cfg->mmio64_base;
	root->next_io = cfg->io_base;
	pci_host_bridge(root);
	if (!root->host.root || pci_root_claim(root)) {
		log_error("pci: cannot claim the configuration ports or the ECAM window");
		pci_root_destroy(root);
		return NULL;
	}
	return root;
}

void pci_root_destroy(struct pci_root *root)
{
	if (!root)
		return;
	if (root->ports_claimed)
		bus_unregister(root->pio, PCI_CF8_PORT);
	if (root->ecam_claimed)
		bus_unregister(root->mmio, root->cfg.ecam_base);
	for (unsigned int slot = 0; slot < PCI_SLOTS; slot++) {
		struct pci_device *dev = root->slots[slot];

		if (!dev)
			continue;
		for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
			pci_bar_unmap(dev, &dev->bars[i]);
		free(dev->reset_cfg);
		dev->reset_cfg = NULL;
		dev->root = NULL;
	}
	pthread_mutex_destroy(&root->lock);
	free(root);
}
