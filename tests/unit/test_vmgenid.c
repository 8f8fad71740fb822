// SPDX-License-Identifier: MIT
/*
 * The pieces of cloning that need no KVM: the VM generation ID (its ACPI
 * device and GPE in the tables, the GPE0 block of the PM device, the GUID
 * itself) and the clone spawner's checks of what the VMM asks it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/vmm/boot/acpi.h"
#include "../../src/vmm/devices/bus.h"
#include "../../src/vmm/devices/legacy.h"
#include "../../src/vmm/devices/vmgenid.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/spawner.h"

#define GPA 0xe0000ULL

static uint8_t buf[LAYOUT_ACPI_SIZE];
static uint32_t ids[4] = {0, 1, 2, 3};

static uint32_t rd32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void build(uint64_t vmgenid_gpa)
{
	struct acpi_config cfg = {.ncpus = 2,
				  .apic_ids = ids,
				  .com1 = true,
				  .ecam_base = LAYOUT_ECAM_BASE,
				  .pci_bus_end = 255,
				  .pci = true,
				  .vmgenid_gpa = vmgenid_gpa,
				  .vmgenid_gpe = LAYOUT_VMGENID_GPE};
	struct error err = {0};
	uint64_t rsdp;

	memset(buf, 0, sizeof(buf));
	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), 0, "%s", err.msg);
}

/* The FADT through RSDP -> XSDT. */
static const uint8_t *fadt(void)
{
	const uint8_t *xsdt = buf + (rd64(buf + 24) - GPA);
	uint32_t n = (rd32(xsdt + 4) - 36) / 8;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *t = buf + (rd64(xsdt + 36 + 8 * i) - GPA);

		if (!memcmp(t, "FACP", 4))
			return t;
	}
	cr_assert_fail("no FADT");
	return NULL;
}

static const uint8_t *dsdt(uint32_t *len)
{
	const uint8_t *t = buf + (rd64(fadt() + 140) - GPA);

	cr_assert_eq(memcmp(t, "DSDT", 4), 0);
	*len = rd32(t + 4);
	return t;
}

static const uint8_t *find(const uint8_t *t, uint32_t len, const void *what, size_t n)
{
	return memmem(t, len, what, n);
}

Test(vmgenid_acpi, no_device_no_gpe_block)
{
	uint32_t len;
	const uint8_t *t;

	build(0);
	cr_assert_eq(rd32(fadt() + 80), 0, "GPE0_BLK");
	cr_assert_eq(fadt()[92], 0, "GPE0_BLK_LEN");
	t = dsdt(&len);
	cr_assert_null(find(t, len, "VGEN", 4));
	cr_assert_null(find(t, len, "_GPE", 4));
}

Test(vmgenid_acpi, device_addr_and_gpe)
{
	/* Method(ADDR, 0) { Return(Package(2){0xdf000, Zero}) } */
	static const uint8_t addr[] = {'A',  'D',  'D',	 'R',  0x00, 0xa4, 0x12, 0x08,
				       0x02, 0x0c, 0x00, 0xf0, 0x0d, 0x00, 0x00};
	/* Notify(\_SB.VGEN, 0x80) */
	static const uint8_t notify[] = {0x86, '\\', 0x2e, '_', 'S',  'B', '_',
					 'V',  'G',  'E',  'N', 0x0a, 0x80};
	const uint8_t *f, *t;
	uint32_t len;

	build(LAYOUT_VMGENID_GPA);
	f = fadt();
	cr_assert_eq(rd32(f + 80), LAYOUT_GPE0_PORT, "GPE0_BLK");
	cr_assert_eq(f[92], 4, "GPE0_BLK_LEN");
	cr_assert_eq(f[220], 1, "X_GPE0_BLK: system I/O");
	cr_assert_eq(rd64(f + 224), LAYOUT_GPE0_PORT, "X_GPE0_BLK address");
	t = dsdt(&len);
	cr_assert_not_null(find(t, len, "VGEN", 4));
	cr_assert_not_null(find(t, len, "VMGENCTR", 8), "_HID Linux matches");
	cr_assert_not_null(find(t, len, "VM_Gen_Counter", 14), "_CID Windows matches");
	cr_assert_not_null(find(t, len, "_DDN", 4));
	cr_assert_not_null(find(t, len, addr, sizeof(addr)), "ADDR returns the GUID address");
	cr_assert_not_null(find(t, len, "_E00", 4));
	cr_assert_not_null(find(t, len, notify, sizeof(notify)));
}

/* The device's AML by ACPICA's disassembler, as a second opinion. */
Test(vmgenid_acpi, iasl_reads_it)
{
	char dir[] = "/tmp/bunshin-vmgenid.XXXXXX", cmd[256], out[65536];
	const uint8_t *t;
	uint32_t len;
	size_t n;
	FILE *p;

	if (system("command -v iasl >/dev/null 2>&1") != 0)
		cr_skip_test("iasl not on PATH (Debian: apt install acpica-tools)");
	build(LAYOUT_VMGENID_GPA);
	t = dsdt(&len);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "%s/dsdt.dat", dir);
	p = fopen(cmd, "wb");
	cr_assert_not_null(p);
	cr_assert_eq(fwrite(t, 1, len, p), len);
	fclose(p);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >/dev/null 2>&1 && cat dsdt.dsl",
		 dir);
	p = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	cr_assert_eq(pclose(p), 0, "iasl -d failed: %s", out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert(strstr(out, "Device (VGEN)"), "%s", out);
	cr_assert(strstr(out, "Method (ADDR, 0, NotSerialized)"), "%s", out);
	cr_assert(strstr(out, "0x000DF000"), "%s", out);
	cr_assert(strstr(out, "Method (_E00, 0, NotSerialized)"), "%s", out);
	cr_assert(strstr(out, "Notify (\\_SB.VGEN, 0x80)"), "%s", out);
}

/* ---- GPE0 in the PM device ---- */

static struct bus bus;
static struct acpi_pm *pm;
static int sci;

static void sci_set(void *ctx, unsigned int gsi, int level)
{
	(void)ctx;
	(void)gsi;
	sci = level;
}

static void pm_setup(void)
{
	struct irq_line l = {.set_level = sci_set, .gsi = LAYOUT_SCI_IRQ};

	bus_init(&bus, "pio");
	sci = 0;
	pm = acpi_pm_create(&bus, &l, NULL);
	cr_assert_not_null(pm);
}

static void pm_teardown(void)
{
	acpi_pm_destroy(pm);
	bus_destroy(&bus);
}

static uint8_t inb(uint16_t port)
{
	uint8_t v = 0xaa;

	cr_assert(bus_read(&bus, port, &v, 1));
	return v;
}

static void outb(uint16_t port, uint8_t v)
{
	cr_assert(bus_write(&bus, port, &v, 1));
}

TestSuite(gpe, .init = pm_setup, .fini = pm_teardown);

Test(gpe, sci_only_when_enabled_and_write_one_to_clear)
{
	acpi_pm_gpe_raise(pm, 0);
	cr_assert_eq(inb(LAYOUT_GPE0_PORT), 1, "GPE0_STS bit 0");
	cr_assert_eq(sci, 0, "not enabled: no SCI");
	outb(LAYOUT_GPE0_PORT + 2, 1);
	cr_assert_eq(inb(LAYOUT_GPE0_PORT + 2), 1, "GPE0_EN reads back");
	cr_assert_eq(sci, 1, "enabled and pending: SCI");
	outb(LAYOUT_GPE0_PORT, 0);
	cr_assert_eq(sci, 1, "writing 0 clears nothing");
	outb(LAYOUT_GPE0_PORT, 1);
	cr_assert_eq(inb(LAYOUT_GPE0_PORT), 0);
	cr_assert_eq(sci, 0, "cleared: the SCI drops");
	acpi_pm_gpe_raise(pm, 16); /* beyond the block: ignored */
	cr_assert_eq(inb(LAYOUT_GPE0_PORT) | inb(LAYOUT_GPE0_PORT + 1), 0);
	acpi_pm_gpe_raise(pm, 0);
	acpi_pm_reset(pm);
	cr_assert_eq(inb(LAYOUT_GPE0_PORT) | inb(LAYOUT_GPE0_PORT + 2), 0, "reset clears both");
	cr_assert_eq(sci, 0);
}

Test(gpe, vmgenid_update_writes_a_v4_guid_and_raises_the_gpe)
{
	uint8_t mem[32] = {0}, a[VMGENID_SIZE], b[VMGENID_SIZE];
	struct error err = {0};

	outb(LAYOUT_GPE0_PORT + 2, 1);
	cr_assert_eq(vmgenid_update(mem + 8, NULL, 0, a, &err), 0, "%s", err.msg);
	cr_assert_eq(sci, 0, "no PM device given: no GPE (a fresh boot)");
	cr_assert_arr_eq(mem + 8, a, VMGENID_SIZE);
	cr_assert_eq(mem[8 + 6] >> 4, 4, "version 4");
	cr_assert_eq(mem[8 + 8] >> 6, 2, "RFC 4122 variant");
	for (int i = 0; i < 8; i++)
		cr_assert_eq(mem[i] | mem[24 + i], 0, "nothing outside the 16 bytes");
	cr_assert_eq(vmgenid_update(mem + 8, pm, 0, b, &err), 0, "%s", err.msg);
	cr_assert_neq(memcmp(a, b, VMGENID_SIZE), 0, "a new GUID each time");
	cr_assert_eq(sci, 1, "announced");
	cr_assert_eq(vmgenid_update(NULL, pm, 0, NULL, &err), -EFAULT);
	cr_assert(strstr(err.msg, "outside guest RAM"), "%s", err.msg);
}

/* ---- the spawner's checks ---- */

static struct spawn_req good(void)
{
	struct spawn_req r = {.magic = SPAWN_MAGIC, .verbose = 1, .nnets = 1, .vsock_cid = 9};

	strcpy(r.dir, "/dev/shm/bunshin-clone-x");
	strcpy(r.log, "/dev/shm/bunshin-clone-x/clone-0/vmm.log");
	strcpy(r.api_sock, "/dev/shm/bunshin-clone-x/clone-0/api.sock");
	strcpy(r.serial, "unix:/dev/shm/bunshin-clone-x/clone-0/serial.sock");
	strcpy(r.vsock_uds, "/dev/shm/bunshin-clone-x/clone-0/vsock.sock");
	strcpy(r.nets[0].id, "net0");
	strcpy(r.nets[0].tap, "tap-c0");
	memcpy(r.nets[0].mac, "\x02\x00\x00\x00\x00\x01", 6);
	return r;
}

static void refused(const struct spawn_req *r, const char *want)
{
	struct error err = {0};

	cr_assert_eq(spawner_check(r, &err), -EINVAL, "accepted (want '%s')", want);
	cr_assert(strstr(err.msg, want), "'%s' not in: %s", want, err.msg);
}

Test(spawner, checks_every_field)
{
	struct spawn_req r = good();
	struct error err = {0};

	cr_assert_eq(spawner_check(&r, &err), 0, "%s", err.msg);
	r = good(), r.magic = 1, refused(&r, "magic");
	r = good(), r.verbose = 4, refused(&r, "verbose");
	r = good(), r.nnets = CONFIG_MAX_NETS + 1, refused(&r, "NICs");
	r = good(), memset(r.dir, 'a', sizeof(r.dir)), refused(&r, "dir is not terminated");
	r = good(), strcpy(r.dir, "relative"), refused(&r, "dir is not an absolute path");
	r = good(), r.dir[0] = 0, refused(&r, "dir is empty");
	r = good(), strcpy(r.log, "/x\n"), refused(&r, "log holds a control character");
	r = good(), strcpy(r.api_sock, "api"), refused(&r, "api socket");
	r = good(), strcpy(r.serial, "stdio"), refused(&r, "serial is not unix:/PATH");
	r = good(), strcpy(r.serial, "unix:rel"), refused(&r, "serial");
	r = good(), strcpy(r.console_virtio, "tcp:/x"), refused(&r, "console");
	r = good(), strcpy(r.vsock_uds, "/a,cid=3"), refused(&r, "vsock uds holds");
	r = good(), r.vsock_cid = 2, refused(&r, "vsock cid 2");
	r = good(), strcpy(r.nets[0].tap, "a,b"), refused(&r, "net tap holds ','");
	r = good(), strcpy(r.nets[0].id, "x=y"), refused(&r, "net id holds '='");
	r = good(), r.nets[0].tap[0] = 0, refused(&r, "net tap is empty");
	r = good(), r.nets[0].mac[0] = 1, refused(&r, "multicast");
	r = good(), memset(r.nets[0].mac, 0, 6), refused(&r, "zero");
	/* Without vsock the CID is not looked at. */
	r = good(), r.vsock_uds[0] = 0, r.vsock_cid = 0;
	cr_assert_eq(spawner_check(&r, &err), 0, "%s", err.msg);
}
