// SPDX-License-Identifier: MIT
/*
 * Snapshot of the PCI root complex and its functions. Section layout
 * (version 1), all little-endian:
 *
 *   u32 cf8            the mechanism #1 address latch
 *   u32 slots          bit n: slot n is populated
 *   per populated slot, in slot order:
 *     u16 vendor, u16 device       identity, checked against the new machine
 *     u8  cfg[4096]                configuration space as the guest sees it
 *     per BAR (6): u8 mapped, u64 mapped_at   where it was decoded
 *     u16 nvec                     MSI-X vectors (0: no MSI-X)
 *     per vector: u32 addr_lo, u32 addr_hi, u32 data, u32 ctrl, u8 pending
 *
 * Only the bits the guest can write (or clear) are taken from the file;
 * every other byte must match the device as created, which is how a state
 * from a differently configured machine is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msix.h"
#include "pci.h"
#include "pci_internal.h"
#include "state.h"

struct pci_slot_state {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t mapped[PCI_NUM_BARS];
	uint64_t mapped_at[PCI_NUM_BARS];
	unsigned int nvec;
	struct msix_vector_state *vec;
};

struct pci_root_state {
	uint32_t cf8;
	struct pci_slot_state slot[PCI_SLOTS];
};

static uint32_t pci_slot_mask(const struct pci_root *root)
{
	uint32_t mask = 0;

	for (unsigned int i = 0; i < PCI_SLOTS; i++)
		if (root->slots[i])
			mask |= 1u << i;
	return mask;
}

/* ---- save ---- */

static int pci_device_save(struct pci_device *dev, struct snap_writer *w)
{
	unsigned int nvec = msix_nvectors(dev);
	struct msix_vector_state *vec = NULL;

	if (nvec) {
		vec = calloc(nvec, sizeof(*vec));
		if (!vec)
			return -ENOMEM;
		msix_save_vectors(dev->msix, vec);
	}
	snap_put_u16(w, pci_config_get16(dev, PCI_VENDOR_ID));
	snap_put_u16(w, pci_config_get16(dev, PCI_DEVICE_ID));
	snap_put_bytes(w, dev->cfg, PCI_CFG_SIZE);
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		snap_put_u8(w, dev->bars[i].mapped);
		snap_put_u64(w, dev->bars[i].mapped ? dev->bars[i].mapped_at : 0);
	}
	snap_put_u16(w, (uint16_t)nvec);
	for (unsigned int i = 0; i < nvec; i++) {
		snap_put_u32(w, vec[i].addr_lo);
		snap_put_u32(w, vec[i].addr_hi);
		snap_put_u32(w, vec[i].data);
		snap_put_u32(w, vec[i].ctrl);
		snap_put_u8(w, vec[i].pending);
	}
	free(vec);
	return 0;
}

int pci_root_save(struct pci_root *root, struct snap_writer *w, const char *name)
{
	int ret = 0;

	pthread_mutex_lock(&root->lock);
	snap_begin(w, name, PCI_STATE_VERSION);
	snap_put_u32(w, root->cf8);
	snap_put_u32(w, pci_slot_mask(root));
	for (unsigned int i = 0; i < PCI_SLOTS && !ret; i++)
		if (root->slots[i])
			ret = pci_device_save(root->slots[i], w);
	snap_end(w);
	pthread_mutex_unlock(&root->lock);
	if (!ret && w->failed)
		ret = -ENOMEM;
	return ret;
}

/* ---- restore: read and check everything first ---- */

static int pci_cfg_check(const struct pci_device *dev, struct pci_slot_state *st, unsigned int slot,
			 const char *name, struct error *err)
{
	for (unsigned int i = 0; i < PCI_CFG_SIZE; i++) {
		uint8_t guest = dev->wmask[i] | dev->w1c[i];

		if ((st->cfg[i] ^ dev->cfg[i]) & ~guest)
			return error_set(err, EINVAL,
					 "state section '%s': slot %u: read-only config byte "
					 "0x%x is 0x%02x, the device has 0x%02x",
					 name, slot, i, st->cfg[i], dev->cfg[i]);
	}
	return 0;
}

static int pci_bars_read(struct snap_section *s, struct pci_slot_state *st, unsigned int slot,
			 const char *name, struct error *err)
{
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		st->mapped[i] = snap_get_u8(s);
		st->mapped_at[i] = snap_get_u64(s);
		if (st->mapped[i] > 1)
			return error_set(err, EINVAL,
					 "state section '%s': slot %u: BAR %u: "
					 "invalid mapped flag %u",
					 name, slot, i, st->mapped[i]);
	}
	return 0;
}

static int pci_vectors_read(struct snap_section *s, const struct pci_device *dev,
			    struct pci_slot_state *st, unsigned int slot, const char *name,
			    struct error *err)
{
	unsigned int nvec = snap_get_u16(s);

	if (nvec != msix_nvectors(dev))
		return error_set(err, EINVAL,
				 "state section '%s': slot %u: %u MSI-X vectors, the device has %u",
				 name, slot, nvec, msix_nvectors(dev));
	st->nvec = nvec;
	if (!nvec)
		return 0;
	st->vec = calloc(nvec, sizeof(*st->vec));
	if (!st->vec)
		return error_set(err, ENOMEM, "state section '%s': out of memory", name);
	for (unsigned int i = 0; i < nvec; i++) {
		uint8_t pending;

		st->vec[i].addr_lo = snap_get_u32(s);
		st->vec[i].addr_hi = snap_get_u32(s);
		st->vec[i].data = snap_get_u32(s);
		st->vec[i].ctrl = snap_get_u32(s);
		pending = snap_get_u8(s);
		if (pending > 1)
			return error_set(err, EINVAL,
					 "state section '%s': slot %u: MSI-X vector %u: invalid "
					 "pending bit %u",
					 name, slot, i, pending);
		st->vec[i].pending = pending;
	}
	return msix_check_vectors(st->vec, nvec, name, err);
}

static int pci_device_read(struct snap_section *s, const struct pci_device *dev,
			   struct pci_slot_state *st, unsigned int slot, const char *name,
			   struct error *err)
{
	uint16_t vendor = snap_get_u16(s), device = snap_get_u16(s);

	if (s->overrun)
		return snap_section_done(s, err);
	if (vendor != pci_config_get16(dev, PCI_VENDOR_ID) ||
	    device != pci_config_get16(dev, PCI_DEVICE_ID))
		return error_set(err, EINVAL,
				 "state section '%s': slot %u held %04x:%04x, the machine has "
				 "%04x:%04x there",
				 name, slot, vendor, device, pci_config_get16(dev, PCI_VENDOR_ID),
				 pci_config_get16(dev, PCI_DEVICE_ID));
	snap_get_bytes(s, st->cfg, PCI_CFG_SIZE);
	if (s->overrun)
		return snap_section_done(s, err);
	if (pci_cfg_check(dev, st, slot, name, err) || pci_bars_read(s, st, slot, name, err))
		return -EINVAL;
	return pci_vectors_read(s, dev, st, slot, name, err);
}

static int pci_state_read(struct pci_root *root, struct snap_section *s, struct pci_root_state *st,
			  const char *name, struct error *err)
{
	uint32_t mask;
	int ret;

	st->cf8 = snap_get_u32(s);
	mask = snap_get_u32(s);
	if (st->cf8 & ~0x80fffffcu)
		return state_bad(err, name, "0xcf8 address", st->cf8);
	if (mask != pci_slot_mask(root))
		return error_set(
			err, EINVAL,
			"state section '%s': slots 0x%08x populated, the machine has 0x%08x", name,
			mask, pci_slot_mask(root));
	for (unsigned int i = 0; i < PCI_SLOTS; i++) {
		if (!root->slots[i])
			continue;
		ret = pci_device_read(s, root->slots[i], &st->slot[i], i, name, err);
		if (ret)
			return ret;
	}
	return snap_section_done(s, err);
}

/* ---- restore: apply ---- */

/* The guest-writable bits from the file, the rest as the device has them. */
static void pci_cfg_merge(const struct pci_device *dev, const uint8_t *saved, uint8_t *out)
{
	for (unsigned int i = 0; i < PCI_CFG_SIZE; i++) {
		uint8_t guest = dev->wmask[i] | dev->w1c[i];

		out[i] = (uint8_t)((dev->cfg[i] & ~guest) | (saved[i] & guest));
	}
}

/*
 * Loads cfg into every device in two passes: first with decoding off, so
 * every BAR leaves the bus, then as saved, so BARs that swapped places
 * between devices do not collide with each other's old ranges.
 */
static void pci_cfg_load_all(struct pci_root *root, uint8_t (*cfg)[PCI_CFG_SIZE])
{
	for (unsigned int i = 0; i < PCI_SLOTS; i++) {
		struct pci_device *dev = root->slots[i];

		if (!dev)
			continue;
		memcpy(dev->cfg, cfg[i], PCI_CFG_SIZE);
		pci_config_set16(dev, PCI_COMMAND,
				 pci_config_get16(dev, PCI_COMMAND) &
					 ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
		pci_bars_update(dev);
	}
	for (unsigned int i = 0; i < PCI_SLOTS; i++) {
		struct pci_device *dev = root->slots[i];

		if (!dev)
			continue;
		memcpy(dev->cfg, cfg[i], PCI_CFG_SIZE);
		pci_bars_update(dev);
	}
}

/* Every BAR that was decoded is decoded at the same place again. */
static int pci_bars_check(struct pci_root *root, const struct pci_root_state *st, const char *name,
			  struct error *err)
{
	for (unsigned int i = 0; i < PCI_SLOTS; i++) {
		const struct pci_device *dev = root->slots[i];

		for (unsigned int b = 0; dev && b < PCI_NUM_BARS; b++) {
			const struct pci_bar *bar = &dev->bars[b];

			if (!st->slot[i].mapped[b])
				continue;
			if (!bar->mapped || bar->mapped_at != st->slot[i].mapped_at[b])
				return error_set(err, EINVAL,
						 "state section '%s': slot %u: BAR %u at 0x%llx "
						 "cannot be decoded there (overlap or bad address)",
						 name, i, b,
						 (unsigned long long)st->slot[i].mapped_at[b]);
		}
	}
	return 0;
}

static int pci_state_apply(struct pci_root *root, const struct pci_root_state *st, const char *name,
			   struct error *err)
{
	uint8_t(*old)[PCI_CFG_SIZE] = calloc(PCI_SLOTS, PCI_CFG_SIZE);
	uint8_t(*new)[PCI_CFG_SIZE] = calloc(PCI_SLOTS, PCI_CFG_SIZE);
	int ret = 0;

	if (!old || !new) {
		ret = error_set(err, ENOMEM, "state section '%s': out of memory", name);
		goto out;
	}
	for (unsigned int i = 0; i < PCI_SLOTS; i++) {
		if (!root->slots[i])
			continue;
		memcpy(old[i], root->slots[i]->cfg, PCI_CFG_SIZE);
		pci_cfg_merge(root->slots[i], st->slot[i].cfg, new[i]);
	}
	pci_cfg_load_all(root, new);
	ret = pci_bars_check(root, st, name, err);
	if (ret) {
		pci_cfg_load_all(root, old);
		goto out;
	}
	for (unsigned int i = 0; i < PCI_SLOTS; i++)
		if (root->slots[i] && root->slots[i]->msix)
			msix_load_vectors(root->slots[i]->msix, st->slot[i].vec);
	root->cf8 = st->cf8;
out:
	free(old);
	free(new);
	return ret;
}

int pci_root_restore(struct pci_root *root, const struct snap_file *f, const char *name,
		     struct error *err)
{
	struct pci_root_state *st = calloc(1, sizeof(*st));
	struct snap_section s;
	int ret;

	if (!st)
		return error_set(err, ENOMEM, "state section '%s': out of memory", name);
	ret = state_open(f, name, PCI_STATE_VERSION, &s, err);
	pthread_mutex_lock(&root->lock);
	if (!ret)
		ret = pci_state_read(root, &s, st, name, err);
	if (!ret)
		ret = pci_state_apply(root, st, name, err);
	pthread_mutex_unlock(&root->lock);
	for (unsigned int i = 0; i < PCI_SLOTS; i++)
		free(st->slot[i].vec);
	free(st);
	return ret;
}
