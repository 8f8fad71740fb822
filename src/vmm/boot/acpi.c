// SPDX-License-Identifier: MIT
/*
 * ACPI tables for the guest, generated from the VM's real configuration.
 * Layouts follow the ACPI specification 6.3 (FADT 6.3, MADT revision 5).
 *
 * The guest finds, at gpa, in this order:
 *   RSDP -> XSDT -> { FADT -> { FACS, DSDT }, MADT, MCFG }
 * There is no RSDT: every consumer we care about reads the XSDT of a
 * revision 2 RSDP, and one root table means one list to keep right.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../common/util.h"
#include "../layout.h"
#include "acpi.h"
#include "aml.h"

#define ACPI_OEM_ID	  "BNSHIN"
#define ACPI_OEM_TABLE_ID "BUNSHIN "
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID	  "BNSH"
#define ACPI_CREATOR_REV  1

/* Names are "C" + three hex digits, so 4096 processor devices at most. */
#define ACPI_MAX_CPUS 4096

/* xAPIC IDs stop at 254: 255 is the broadcast ID. */
#define ACPI_XAPIC_ID_MAX 254

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t ext_checksum; /* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_SYSTEM_IO    1
#define ACPI_GAS_ACCESS_BYTE  1
#define ACPI_GAS_ACCESS_WORD  2
#define ACPI_GAS_ACCESS_DWORD 3

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

/* FADT flags */
#define ACPI_FADT_WBINVD	(1u << 0)
#define ACPI_FADT_PROC_C1	(1u << 2)
#define ACPI_FADT_SLP_BUTTON	(1u << 5)
#define ACPI_FADT_FIX_RTC	(1u << 6)
#define ACPI_FADT_TMR_VAL_EXT	(1u << 8)
#define ACPI_FADT_RESET_REG_SUP (1u << 10)

/* IA-PC boot architecture flags */
#define ACPI_BOOT_LEGACY_DEVICES (1u << 0)
#define ACPI_BOOT_8042		 (1u << 1)
#define ACPI_BOOT_NO_VGA	 (1u << 2)
#define ACPI_BOOT_NO_ASPM	 (1u << 4)
#define ACPI_BOOT_NO_CMOS_RTC	 (1u << 5)

/* Latencies above 100 / 1000 us mean "C2 / C3 not supported". */
#define ACPI_P_LVL2_NONE 101
#define ACPI_P_LVL3_NONE 1001

struct acpi_madt {
	struct acpi_header header;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

#define ACPI_MADT_PCAT_COMPAT 1u

struct acpi_madt_lapic {
	uint8_t type;
	uint8_t length;
	uint8_t uid;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_ioapic {
	uint8_t type;
	uint8_t length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct acpi_madt_iso {
	uint8_t type;
	uint8_t length;
	uint8_t bus;
	uint8_t source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct acpi_madt_lapic_nmi {
	uint8_t type;
	uint8_t length;
	uint8_t uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

struct acpi_madt_x2apic {
	uint8_t type;
	uint8_t length;
	uint16_t reserved;
	uint32_t x2apic_id;
	uint32_t flags;
	uint32_t uid;
} __attribute__((packed));

struct acpi_madt_x2apic_nmi {
	uint8_t type;
	uint8_t length;
	uint16_t flags;
	uint32_t uid;
	uint8_t lint;
	uint8_t reserved[3];
} __attribute__((packed));

#define ACPI_MADT_LAPIC	     0
#define ACPI_MADT_IOAPIC     1
#define ACPI_MADT_ISO	     2
#define ACPI_MADT_LAPIC_NMI  4
#define ACPI_MADT_X2APIC     9
#define ACPI_MADT_X2APIC_NMI 10

#define ACPI_MADT_ENABLED 1u

/* MPS INTI flags: polarity in bits 1:0, trigger mode in bits 3:2. */
#define ACPI_MPS_CONFORMING  0x0
#define ACPI_MPS_ACTIVE_HIGH 0x1
#define ACPI_MPS_LEVEL	     (0x3 << 2)

#define ACPI_NMI_ALL_XAPIC  0xff
#define ACPI_NMI_ALL_X2APIC 0xffffffffu
#define ACPI_LINT1	    1

struct acpi_mcfg {
	struct acpi_header header;
	uint64_t reserved;
	uint64_t base;
	uint16_t segment;
	uint8_t bus_start;
	uint8_t bus_end;
	uint32_t reserved1;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");
_Static_assert(sizeof(struct acpi_header) == 36, "table header is 36 bytes");
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS is 64 bytes");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 is 276 bytes");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT header is 44 bytes");
_Static_assert(sizeof(struct acpi_madt_lapic) == 8, "LAPIC entry is 8 bytes");
_Static_assert(sizeof(struct acpi_madt_ioapic) == 12, "IOAPIC entry is 12 bytes");
_Static_assert(sizeof(struct acpi_madt_iso) == 10, "ISO entry is 10 bytes");
_Static_assert(sizeof(struct acpi_madt_lapic_nmi) == 6, "LAPIC NMI entry is 6 bytes");
_Static_assert(sizeof(struct acpi_madt_x2apic) == 16, "x2APIC entry is 16 bytes");
_Static_assert(sizeof(struct acpi_madt_x2apic_nmi) == 12, "x2APIC NMI entry is 12 bytes");
_Static_assert(sizeof(struct acpi_mcfg) == 60, "MCFG with one allocation is 60 bytes");

/* Where each table goes, relative to buf. */
struct acpi_layout {
	size_t rsdp, facs, dsdt, fadt, madt, mcfg, xsdt, end;
	size_t dsdt_len, madt_len;
};

#define ACPI_XSDT_ENTRIES 3 /* FADT, MADT, MCFG */

static uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		sum += b[i];
	return -sum;
}

static void acpi_header(void *table, const char *sig, size_t len, uint8_t rev)
{
	struct acpi_header *h = table;

	memcpy(h->signature, sig, 4);
	h->length = htole32(len);
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = htole32(ACPI_OEM_REVISION);
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = htole32(ACPI_CREATOR_REV);
}

/* Last step for each table: the checksum covers every other byte. */
static void acpi_seal(void *table, size_t len)
{
	struct acpi_header *h = table;

	h->checksum = 0;
	h->checksum = acpi_checksum(table, len);
}

static bool acpi_cpu_x2apic(const struct acpi_config *cfg, unsigned int i)
{
	return cfg->apic_ids[i] > ACPI_XAPIC_ID_MAX;
}

static bool acpi_any_x2apic(const struct acpi_config *cfg)
{
	unsigned int i;

	for (i = 0; i < cfg->ncpus; i++)
		if (acpi_cpu_x2apic(cfg, i))
			return true;
	return false;
}

static int acpi_check_cpus(const struct acpi_config *cfg, struct error *err)
{
	unsigned int i, j;

	if (!cfg->ncpus || cfg->ncpus > ACPI_MAX_CPUS || !cfg->apic_ids)
		return error_set(err, EINVAL, "ACPI: %u vCPUs (need 1-%u with APIC IDs)",
				 cfg->ncpus, ACPI_MAX_CPUS);
	for (i = 0; i < cfg->ncpus; i++) {
		uint32_t id = cfg->apic_ids[i];

		if (id == UINT32_MAX)
			return error_set(err, EINVAL, "ACPI: vCPU %u has APIC ID 0xffffffff", i);
		/*
		 * A Local APIC entry's UID is 8 bits and 0xff means "all" in
		 * NMI entries, so a vCPU past index 254 must be an x2APIC one.
		 */
		if (i > ACPI_XAPIC_ID_MAX && id <= ACPI_XAPIC_ID_MAX)
			return error_set(err, EINVAL,
					 "ACPI: vCPU %u has xAPIC ID %u; APIC IDs must ascend", i,
					 id);
		for (j = 0; j < i; j++)
			if (cfg->apic_ids[j] == id)
				return error_set(err, EINVAL,
						 "ACPI: vCPUs %u and %u share APIC ID %u", j, i,
						 id);
	}
	return 0;
}

/* DSDT: one processor device per vCPU; _UID is the MADT processor UID. */
static void acpi_dsdt_cpus(struct aml *a, const struct acpi_config *cfg)
{
	char name[16];
	unsigned int i;

	for (i = 0; i < cfg->ncpus; i++) {
		snprintf(name, sizeof(name), "C%03X", i);
		aml_device_begin(a, name);
		aml_name_string(a, "_HID", "ACPI0007");
		aml_name_int(a, "_UID", i);
		aml_device_end(a);
	}
}

static void acpi_dsdt_com1(struct aml *a)
{
	aml_device_begin(a, "COM1");
	aml_name_eisaid(a, "_HID", "PNP0501");
	aml_name_int(a, "_UID", 1);
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_io(a, LAYOUT_COM1_PORT, LAYOUT_COM1_PORT, 1, 8);
	aml_irq_noflags(a, LAYOUT_COM1_IRQ);
	aml_restemplate_end(a);
	aml_device_end(a);
}

static void acpi_dsdt_i8042(struct aml *a)
{
	aml_device_begin(a, "PS2K");
	aml_name_eisaid(a, "_HID", "PNP0303");
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_io(a, LAYOUT_I8042_DATA_PORT, LAYOUT_I8042_DATA_PORT, 1, 1);
	aml_io(a, LAYOUT_I8042_CMD_PORT, LAYOUT_I8042_CMD_PORT, 1, 1);
	aml_irq_noflags(a, LAYOUT_I8042_IRQ);
	aml_restemplate_end(a);
	aml_device_end(a);
}

static void acpi_dsdt_rtc(struct aml *a)
{
	aml_device_begin(a, "RTC");
	aml_name_eisaid(a, "_HID", "PNP0B00");
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_io(a, LAYOUT_RTC_PORT, LAYOUT_RTC_PORT, 1, 2);
	aml_irq_noflags(a, LAYOUT_RTC_IRQ);
	aml_restemplate_end(a);
	aml_device_end(a);
}

/*
 * The windows the root bridge forwards. The I/O ranges leave out
 * 0xcf8-0xcff, the configuration ports the bridge itself consumes.
 */
static void acpi_dsdt_pci_crs(struct aml *a, const struct acpi_config *cfg)
{
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_word_bus_number(a, 0, cfg->pci_bus_end);
	aml_word_io(a, 0x0000, 0x0cf7);
	aml_word_io(a, 0x0d00, 0xffff);
	aml_dword_memory(a, LAYOUT_PCI_MMIO32_BASE, LAYOUT_PCI_MMIO32_END - 1, AML_MEM_RW);
	/* Cacheable, not prefetchable: Linux then accepts any 64-bit BAR in it. */
	if (cfg->pci_mmio64_size)
		aml_qword_memory(a, cfg->pci_mmio64_base,
				 cfg->pci_mmio64_base + cfg->pci_mmio64_size - 1,
				 AML_MEM_RW | AML_MEM_CACHEABLE);
	aml_restemplate_end(a);
}

/* PCI Express root bridge of segment 0; MCFG gives its ECAM window. */
static void acpi_dsdt_pci(struct aml *a, const struct acpi_config *cfg)
{
	aml_device_begin(a, "PCI0");
	aml_name_eisaid(a, "_HID", "PNP0A08");
	aml_name_eisaid(a, "_CID", "PNP0A03");
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_BBN", 0);
	aml_name_int(a, "_UID", 0);
	acpi_dsdt_pci_crs(a, cfg);
	aml_device_end(a);
}

/*
 * The VM generation ID device as Microsoft's specification and QEMU have
 * it: _CID "VM_Gen_Counter" (what Windows matches), _HID "VMGENCTR" (what
 * Linux's vmgenid driver matches), and ADDR, a package of two DWORDs:
 * the low and high halves of the GUID's guest-physical address.
 */
static void acpi_dsdt_vmgenid(struct aml *a, const struct acpi_config *cfg)
{
	aml_device_begin(a, "VGEN");
	aml_name_string(a, "_HID", "VMGENCTR");
	aml_name_string(a, "_CID", "VM_Gen_Counter");
	aml_name_string(a, "_DDN", "VM_Gen_Counter");
	aml_method_begin(a, "ADDR", 0, 0);
	aml_return(a);
	aml_package_begin(a);
	aml_int(a, cfg->vmgenid_gpa & 0xffffffffu);
	aml_int(a, cfg->vmgenid_gpa >> 32);
	aml_package_end(a);
	aml_method_end(a);
	aml_device_end(a);
}

/* \_GPE._Exx: the edge-triggered GPE the VMM raises when the GUID changes. */
static void acpi_dsdt_gpe(struct aml *a, const struct acpi_config *cfg)
{
	char name[8];

	snprintf(name, sizeof(name), "_E%02X", cfg->vmgenid_gpe & 0xff);
	aml_scope_begin(a, "\\_GPE");
	aml_method_begin(a, name, 0, 0);
	aml_notify(a, "\\_SB.VGEN", 0x80);
	aml_method_end(a);
	aml_scope_end(a);
}

/* The DSDT body (AML after the table header). */
static int acpi_dsdt_aml(const struct acpi_config *cfg, struct aml *a, struct error *err)
{
	/* \_S5: SLP_TYPa, SLP_TYPb, reserved, reserved. */
	aml_name(a, "_S5");
	aml_package_begin(a);
	aml_int(a, LAYOUT_S5_SLP_TYP);
	aml_int(a, LAYOUT_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_package_end(a);

	aml_scope_begin(a, "\\_SB");
	acpi_dsdt_cpus(a, cfg);
	if (cfg->com1)
		acpi_dsdt_com1(a);
	if (cfg->i8042)
		acpi_dsdt_i8042(a);
	if (cfg->rtc)
		acpi_dsdt_rtc(a);
	if (cfg->pci)
		acpi_dsdt_pci(a, cfg);
	if (cfg->vmgenid_gpa)
		acpi_dsdt_vmgenid(a, cfg);
	aml_scope_end(a);
	if (cfg->vmgenid_gpa)
		acpi_dsdt_gpe(a, cfg);

	if (aml_finish(a, err) < 0)
		return error_wrap(err, "building the DSDT");
	return 0;
}

static size_t acpi_madt_len(const struct acpi_config *cfg)
{
	size_t len = sizeof(struct acpi_madt);
	unsigned int i;

	for (i = 0; i < cfg->ncpus; i++)
		len += acpi_cpu_x2apic(cfg, i) ? sizeof(struct acpi_madt_x2apic)
					       : sizeof(struct acpi_madt_lapic);
	len += sizeof(struct acpi_madt_ioapic);
	len += 2 * sizeof(struct acpi_madt_iso);
	len += sizeof(struct acpi_madt_lapic_nmi);
	if (acpi_any_x2apic(cfg))
		len += sizeof(struct acpi_madt_x2apic_nmi);
	return len;
}

static void acpi_plan(const struct acpi_config *cfg, size_t aml_len, struct acpi_layout *l)
{
	l->rsdp = 0;
	/* The FACS must be 64-byte aligned. */
	l->facs = align_up(sizeof(struct acpi_rsdp), 64);
	l->dsdt = l->facs + sizeof(struct acpi_facs);
	l->dsdt_len = sizeof(struct acpi_header) + aml_len;
	l->fadt = align_up(l->dsdt + l->dsdt_len, 8);
	l->madt = align_up(l->fadt + sizeof(struct acpi_fadt), 8);
	l->madt_len = acpi_madt_len(cfg);
	l->mcfg = align_up(l->madt + l->madt_len, 8);
	l->xsdt = align_up(l->mcfg + sizeof(struct acpi_mcfg), 8);
	l->end = l->xsdt + sizeof(struct acpi_header) + 8 * ACPI_XSDT_ENTRIES;
}

static void acpi_write_rsdp(uint8_t *buf, uint64_t gpa, const struct acpi_layout *l)
{
	struct acpi_rsdp *r = (struct acpi_rsdp *)(buf + l->rsdp);

	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, ACPI_OEM_ID, 6);
	r->revision = 2;
	r->rsdt_address = 0;
	r->length = htole32(sizeof(*r));
	r->xsdt_address = htole64(gpa + l->xsdt);
	r->checksum = acpi_checksum(r, 20);
	r->ext_checksum = acpi_checksum(r, sizeof(*r));
}

static void acpi_write_facs(uint8_t *buf, const struct acpi_layout *l)
{
	struct acpi_facs *f = (struct acpi_facs *)(buf + l->facs);

	/* No S3/S4, no global lock users: only the identity fields matter. */
	memcpy(f->signature, "FACS", 4);
	f->length = htole32(sizeof(*f));
	f->version = 2;
}

static void acpi_write_dsdt(uint8_t *buf, const struct acpi_layout *l, const struct aml *a)
{
	uint8_t *t = buf + l->dsdt;

	/* Revision 2: AML integers are 64 bits wide. */
	acpi_header(t, "DSDT", l->dsdt_len, 2);
	memcpy(t + sizeof(struct acpi_header), a->data, a->len);
	acpi_seal(t, l->dsdt_len);
}

static struct acpi_gas acpi_io_gas(uint16_t port, unsigned int bytes, uint8_t access)
{
	struct acpi_gas g = {
		.space_id = ACPI_GAS_SYSTEM_IO,
		.bit_width = 8 * bytes,
		.access_size = access,
		.address = htole64(port),
	};

	return g;
}

/* Where 32-bit fields cannot hold an address, only the X_ field has it. */
static uint32_t acpi_addr32(uint64_t addr)
{
	return addr > UINT32_MAX ? 0 : htole32((uint32_t)addr);
}

static void acpi_fadt_pm(struct acpi_fadt *f)
{
	/* SMI_CMD 0: the platform is always in ACPI mode, SCI_EN reads 1. */
	f->sci_int = htole16(LAYOUT_SCI_IRQ);
	f->pm1a_evt_blk = htole32(LAYOUT_PM1A_EVT_PORT);
	f->pm1a_cnt_blk = htole32(LAYOUT_PM1A_CNT_PORT);
	f->pm_tmr_blk = htole32(LAYOUT_PM_TMR_PORT);
	f->pm1_evt_len = 4;
	f->pm1_cnt_len = 2;
	f->pm_tmr_len = 4;
	f->x_pm1a_evt_blk = acpi_io_gas(LAYOUT_PM1A_EVT_PORT, 4, ACPI_GAS_ACCESS_WORD);
	f->x_pm1a_cnt_blk = acpi_io_gas(LAYOUT_PM1A_CNT_PORT, 2, ACPI_GAS_ACCESS_WORD);
	f->x_pm_tmr_blk = acpi_io_gas(LAYOUT_PM_TMR_PORT, 4, ACPI_GAS_ACCESS_DWORD);
	f->p_lvl2_lat = htole16(ACPI_P_LVL2_NONE);
	f->p_lvl3_lat = htole16(ACPI_P_LVL3_NONE);
}

static uint16_t acpi_boot_arch(const struct acpi_config *cfg)
{
	uint16_t v = ACPI_BOOT_NO_VGA | ACPI_BOOT_NO_ASPM;

	if (cfg->com1 || cfg->i8042 || cfg->rtc)
		v |= ACPI_BOOT_LEGACY_DEVICES;
	if (cfg->i8042)
		v |= ACPI_BOOT_8042;
	if (!cfg->rtc)
		v |= ACPI_BOOT_NO_CMOS_RTC;
	return v;
}

static void acpi_write_fadt(const struct acpi_config *cfg, uint8_t *buf, uint64_t gpa,
			    const struct acpi_layout *l)
{
	struct acpi_fadt *f = (struct acpi_fadt *)(buf + l->fadt);

	acpi_header(f, "FACP", sizeof(*f), 6);
	f->firmware_ctrl = acpi_addr32(gpa + l->facs);
	f->dsdt = acpi_addr32(gpa + l->dsdt);
	f->x_firmware_ctrl = htole64(gpa + l->facs);
	f->x_dsdt = htole64(gpa + l->dsdt);
	acpi_fadt_pm(f);
	/* GPE0 (two bytes of status, two of enables) for the devices that raise GPEs. */
	if (cfg->vmgenid_gpa) {
		f->gpe0_blk = htole32(LAYOUT_GPE0_PORT);
		f->gpe0_blk_len = 4;
		f->x_gpe0_blk = acpi_io_gas(LAYOUT_GPE0_PORT, 4, ACPI_GAS_ACCESS_BYTE);
	}
	f->iapc_boot_arch = htole16(acpi_boot_arch(cfg));
	/*
	 * The power button stays a fixed feature (PWR_BUTTON clear): the PM
	 * device raises PWRBTN_STS when the VMM asks for a clean shutdown.
	 * There is no sleep button and no RTC wake status in PM1 (FIX_RTC).
	 * The PM device's timer wraps at 32 bits: TMR_VAL_EXT.
	 */
	f->flags = htole32(ACPI_FADT_WBINVD | ACPI_FADT_PROC_C1 | ACPI_FADT_SLP_BUTTON |
			   ACPI_FADT_FIX_RTC | ACPI_FADT_TMR_VAL_EXT | ACPI_FADT_RESET_REG_SUP);
	f->reset_reg = acpi_io_gas(LAYOUT_RESET_PORT, 1, ACPI_GAS_ACCESS_BYTE);
	f->reset_value = LAYOUT_RESET_VALUE;
	f->minor_version = 3;
	memcpy(&f->hypervisor_vendor_id, "BUNSHIN", 8);
	acpi_seal(f, sizeof(*f));
}

static uint8_t *acpi_madt_cpu(uint8_t *p, const struct acpi_config *cfg, unsigned int i)
{
	if (acpi_cpu_x2apic(cfg, i)) {
		struct acpi_madt_x2apic *e = (struct acpi_madt_x2apic *)p;

		e->type = ACPI_MADT_X2APIC;
		e->length = sizeof(*e);
		e->x2apic_id = htole32(cfg->apic_ids[i]);
		e->flags = htole32(ACPI_MADT_ENABLED);
		e->uid = htole32(i);
		return p + sizeof(*e);
	} else {
		struct acpi_madt_lapic *e = (struct acpi_madt_lapic *)p;

		e->type = ACPI_MADT_LAPIC;
		e->length = sizeof(*e);
		e->uid = i;
		e->apic_id = cfg->apic_ids[i];
		e->flags = htole32(ACPI_MADT_ENABLED);
		return p + sizeof(*e);
	}
}

static uint8_t *acpi_madt_iso(uint8_t *p, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	struct acpi_madt_iso *e = (struct acpi_madt_iso *)p;

	e->type = ACPI_MADT_ISO;
	e->length = sizeof(*e);
	e->bus = 0; /* ISA */
	e->source = irq;
	e->gsi = htole32(gsi);
	e->flags = htole16(flags);
	return p + sizeof(*e);
}

static uint8_t *acpi_madt_ioapic(uint8_t *p)
{
	struct acpi_madt_ioapic *e = (struct acpi_madt_ioapic *)p;

	e->type = ACPI_MADT_IOAPIC;
	e->length = sizeof(*e);
	e->ioapic_id = LAYOUT_IOAPIC_ID;
	e->address = htole32(LAYOUT_IOAPIC_BASE);
	e->gsi_base = 0;
	return p + sizeof(*e);
}

/* LINT1 of every processor is wired to NMI, as on PC hardware. */
static uint8_t *acpi_madt_nmi(uint8_t *p, bool x2apic)
{
	if (x2apic) {
		struct acpi_madt_x2apic_nmi *e = (struct acpi_madt_x2apic_nmi *)p;

		e->type = ACPI_MADT_X2APIC_NMI;
		e->length = sizeof(*e);
		e->flags = htole16(ACPI_MPS_CONFORMING);
		e->uid = htole32(ACPI_NMI_ALL_X2APIC);
		e->lint = ACPI_LINT1;
		return p + sizeof(*e);
	} else {
		struct acpi_madt_lapic_nmi *e = (struct acpi_madt_lapic_nmi *)p;

		e->type = ACPI_MADT_LAPIC_NMI;
		e->length = sizeof(*e);
		e->uid = ACPI_NMI_ALL_XAPIC;
		e->flags = htole16(ACPI_MPS_CONFORMING);
		e->lint = ACPI_LINT1;
		return p + sizeof(*e);
	}
}

static void acpi_write_madt(const struct acpi_config *cfg, uint8_t *buf,
			    const struct acpi_layout *l)
{
	struct acpi_madt *m = (struct acpi_madt *)(buf + l->madt);
	uint8_t *p = buf + l->madt + sizeof(*m);
	unsigned int i;

	acpi_header(m, "APIC", l->madt_len, 5);
	m->lapic_address = htole32(LAYOUT_LAPIC_BASE);
	m->flags = htole32(ACPI_MADT_PCAT_COMPAT);
	/* Boot CPU first: OSes number CPUs in MADT order. */
	for (i = 0; i < cfg->ncpus; i++)
		p = acpi_madt_cpu(p, cfg, i);
	p = acpi_madt_ioapic(p);
	/* The PIT's IRQ0 is on IOAPIC pin 2; the SCI is level, active high. */
	p = acpi_madt_iso(p, 0, 2, ACPI_MPS_CONFORMING);
	p = acpi_madt_iso(p, LAYOUT_SCI_IRQ, LAYOUT_SCI_IRQ, ACPI_MPS_ACTIVE_HIGH | ACPI_MPS_LEVEL);
	p = acpi_madt_nmi(p, false);
	if (acpi_any_x2apic(cfg))
		p = acpi_madt_nmi(p, true);
	acpi_seal(m, l->madt_len);
}

static void acpi_write_mcfg(const struct acpi_config *cfg, uint8_t *buf,
			    const struct acpi_layout *l)
{
	struct acpi_mcfg *m = (struct acpi_mcfg *)(buf + l->mcfg);

	acpi_header(m, "MCFG", sizeof(*m), 1);
	m->base = htole64(cfg->ecam_base);
	m->segment = 0;
	m->bus_start = 0;
	m->bus_end = cfg->pci_bus_end;
	acpi_seal(m, sizeof(*m));
}

static void acpi_write_xsdt(uint8_t *buf, uint64_t gpa, const struct acpi_layout *l)
{
	const size_t entries[ACPI_XSDT_ENTRIES] = {l->fadt, l->madt, l->mcfg};
	size_t len = sizeof(struct acpi_header) + 8 * ACPI_XSDT_ENTRIES;
	uint8_t *t = buf + l->xsdt;
	unsigned int i;

	acpi_header(t, "XSDT", len, 1);
	for (i = 0; i < ACPI_XSDT_ENTRIES; i++) {
		/* Entries are not 8-byte aligned in the table: copy, don't store. */
		uint64_t addr = htole64(gpa + entries[i]);

		memcpy(t + sizeof(struct acpi_header) + 8 * i, &addr, 8);
	}
	acpi_seal(t, len);
}

static int acpi_check_config(const struct acpi_config *cfg, uint64_t gpa, size_t size,
			     struct error *err)
{
	if (!cfg)
		return error_set(err, EINVAL, "ACPI: no configuration");
	if (range_overflows(gpa, size))
		return error_set(err, EINVAL, "ACPI: area at 0x%llx + 0x%zx wraps around",
				 (unsigned long long)gpa, size);
	if (cfg->pci && cfg->pci_mmio64_size &&
	    (range_overflows(cfg->pci_mmio64_base, cfg->pci_mmio64_size) ||
	     cfg->pci_mmio64_base < (1ULL << 32)))
		return error_set(err, EINVAL,
				 "ACPI: 64-bit PCI window at 0x%llx + 0x%llx is invalid",
				 (unsigned long long)cfg->pci_mmio64_base,
				 (unsigned long long)cfg->pci_mmio64_size);
	if (cfg->ecam_base & ((1ULL << 20) - 1))
		return error_set(err, EINVAL, "ACPI: ECAM base 0x%llx is not 1 MiB aligned",
				 (unsigned long long)cfg->ecam_base);
	return acpi_check_cpus(cfg, err);
}

int acpi_build(const struct acpi_config *cfg, uint8_t *buf, uint64_t gpa, size_t size,
	       uint64_t *rsdp_gpa, struct error *err)
{
	struct acpi_layout l;
	struct aml a;
	int ret;

	ret = acpi_check_config(cfg, gpa, size, err);
	if (ret < 0)
		return ret;
	aml_init(&a);
	ret = acpi_dsdt_aml(cfg, &a, err);
	if (ret < 0)
		goto out;
	acpi_plan(cfg, a.len, &l);
	/* Check before writing anything: a failed build leaves buf untouched. */
	if (l.end > size) {
		ret = error_set(err, ENOSPC,
				"ACPI tables for %u vCPUs need %zu bytes, only %zu available",
				cfg->ncpus, l.end, size);
		goto out;
	}
	memset(buf, 0, l.end);
	acpi_write_facs(buf, &l);
	acpi_write_dsdt(buf, &l, &a);
	acpi_write_fadt(cfg, buf, gpa, &l);
	acpi_write_madt(cfg, buf, &l);
	acpi_write_mcfg(cfg, buf, &l);
	acpi_write_xsdt(buf, gpa, &l);
	acpi_write_rsdp(buf, gpa, &l);
	*rsdp_gpa = gpa + l.rsdp;
	ret = 0;
out:
	aml_free(&a);
	return ret;
}
