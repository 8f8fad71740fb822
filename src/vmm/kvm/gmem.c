// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmem.h"
#include "../layout.h"
#include "../../common/util.h"

static void gmem_add_slot(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t offset)
{
	struct gmem_slot *s = &m->slots[m->nslots++];

	s->gpa = gpa;
	s->size = size;
	s->offset = offset;
	s->host = m->base + offset;
}

/* The guest-physical view of size bytes of mapping: split around the PCI hole. */
static void gmem_layout(struct gmem *m, uint64_t size)
{
	uint64_t low = size < LAYOUT_LOW_RAM_END ? size : LAYOUT_LOW_RAM_END;

	m->size = size;
	gmem_add_slot(m, 0, low, 0);
	if (size > low)
		gmem_add_slot(m, LAYOUT_HIGH_RAM_START, size - low, low);
}

int gmem_init_file(struct gmem *m, uint64_t size, const char *path, struct error *err)
{
	struct stat st;
	int fd;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		close(fd);
		return error_set(err, EINVAL, "%s: %llu bytes, the VM has %llu bytes of memory",
				 path, (unsigned long long)st.st_size, (unsigned long long)size);
	}
	/* Private: the guest's writes go to pages of our own, never to the file. */
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	close(fd); /* the mapping keeps the file */
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return error_set(err, errno, "mapping %s: %s", path, strerror(errno));
	}
	gmem_layout(m, size);
	return 0;
}

int gmem_init(struct gmem *m, uint64_t size, struct error *err)
{
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (size < 2 * MiB || size % (2 * MiB))
		return error_set(err, EINVAL,
				 "memory size must be a multiple of 2 MiB and at least 2 MiB");

	m->memfd = memfd_create("bunshin-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->memfd < 0)
		return error_set(err, errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(m->memfd, size) < 0) {
		int e = errno;
		close(m->memfd);
		m->memfd = -1;
		return error_set(err, e, "sizing guest memory to %llu bytes: %s",
				 (unsigned long long)size, strerror(e));
	}
	/*
	 * MAP_NORESERVE: guest RAM is touched lazily; reserving swap for all of
	 * it up front would make overcommitted hosts refuse VMs they could run.
	 */
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->memfd, 0);
	if (m->base == MAP_FAILED) {
		int e = errno;
		close(m->memfd);
		m->memfd = -1;
		m->base = NULL;
		return error_set(err, e, "mapping guest memory: %s", strerror(e));
	}
	gmem_layout(m, size);
	return 0;
}

void gmem_destroy(struct gmem *m)
{
	if (m->base)
		munmap(m->base, m->size);
	if (m->memfd >= 0)
		close(m->memfd);
	m->base = NULL;
	m->memfd = -1;
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < m->nslots; i++) {
		const struct gmem_slot *s = &m->slots[i];

		if (gpa < s->gpa)
			continue;
		/* Written as subtractions so no sum can wrap. */
		if (gpa - s->gpa >= s->size && !(len == 0 && gpa - s->gpa == s->size))
			continue;
		if (len > s->size - (gpa - s->gpa))
			return NULL;
		return s->host + (gpa - s->gpa);
	}
	return NULL;
}

int gmem_read(const struct gmem *m, uint64_t gpa, void *buf, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

int gmem_write(const struct gmem *m, uint64_t gpa, const void *buf, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	gmem_mark_dirty_host(m, p, len);
	return 0;
}

/*
 * Guest RAM is a MAP_SHARED mapping of a memfd, i.e. shmem: MADV_DONTNEED
 * would only zap this process's page table entries, while the pages stay
 * in the memfd's page cache, still charged to us and still holding the
 * guest's data. Punching a hole takes them out of the file itself (and out
 * of every mapping of it, KVM's included); the next access faults in a
 * fresh zero page.
 */
/*
 * A snapshot's private file mapping: MADV_DONTNEED would drop our copies
 * but bring the file's bytes back, not zeroes. Mapping fresh anonymous
 * memory over the range frees the pages and reads as zeroes; KVM sees the
 * change through its MMU notifier.
 */
static int gmem_discard_private(uint8_t *p, uint64_t len)
{
	void *r = mmap(p, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);

	return r == MAP_FAILED ? -errno : 0;
}

int gmem_discard(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p;

	if (gpa % GMEM_PAGE_SIZE || len % GMEM_PAGE_SIZE)
		return -EINVAL;
	if (!len)
		return 0;
	p = gmem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	/* The guest reads zeroes there now: a copy being made must learn of it. */
	gmem_mark_dirty_host(m, p, len);
	if (m->memfd < 0)
		return gmem_discard_private(p, len);
	if (fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, p - m->base,
		      (off_t)len) < 0)
		return -errno;
	return 0;
}

uint64_t gmem_end(const struct gmem *m)
{
	const struct gmem_slot *s = &m->slots[m->nslots - 1];

	return s->gpa + s->size;
}

void gmem_mark_dirty_host(const struct gmem *m, const void *p, uint64_t len)
{
	uint64_t first, last;
	uintptr_t off;

	if (!__atomic_load_n(&m->tracking, __ATOMIC_ACQUIRE) || !len)
		return;
	off = (uintptr_t)p - (uintptr_t)m->base;
	if ((uintptr_t)p < (uintptr_t)m->base || off >= m->size || len > m->size - off)
		return;
	first = off / GMEM_PAGE_SIZE;
	last = (off + len - 1) / GMEM_PAGE_SIZE;
	/* Seen by the collector after it cleared its copy: each word once, atomically. */
	for (uint64_t pg = first; pg <= last; pg++)
		__atomic_fetch_or(&m->dirty[pg / 64], 1ULL << (pg % 64), __ATOMIC_RELAXED);
}

void gmem_mark_dirty(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	const void *p;

	if (!__atomic_load_n(&m->tracking, __ATOMIC_ACQUIRE))
		return;
	p = gmem_ptr(m, gpa, len);
	if (p)
		gmem_mark_dirty_host(m, p, len);
}
