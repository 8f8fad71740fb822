// SPDX-License-Identifier: MIT
/*
 * The VMM's seccomp filter: an allow-list of the system calls a running VM
 * needs, installed on every thread once start-up is over.
 *
 * What counts as start-up: opening /dev/kvm, the disk images, taps and
 * console sockets, creating the I/O, console and API threads, and binding
 * the API socket. What does not: a guest reboot rebuilds the KVM VM, guest
 * memory (a new memfd) and the vCPU threads, a restore maps the memory file,
 * a snapshot writes files from the API thread, and vsock connects unix
 * sockets on behalf of the guest. Those run under the filter, so it allows
 * them; what only start-up does (execve, bind, listen, io_uring_setup,
 * opening taps: TUNSETIFF, sockets of any family but AF_UNIX) is refused.
 *
 * One filter for the whole process, the union of what its thread kinds
 * (vCPU, I/O, console input, API, main) need: filters are per thread, but
 * a reboot creates vCPU threads from the main thread, which therefore needs
 * everything a vCPU does, and the API thread takes snapshots, which need
 * most of what the others do. vCPU threads and the I/O thread then stack a
 * narrower filter of their own on it (sandbox_seccomp_thread): what their
 * work needs once they run, and nothing that only the others do.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "seccomp.h"
#include "../config.h"
#include "../../common/util.h"

/* The sanitizers' runtimes make system calls of their own (see sandbox_add_sanitizer). */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

/*
 * Names of the system calls, looked up when the filter is installed: the
 * SIGSYS handler may not allocate, and libseccomp's lookup does.
 */
#define SANDBOX_NR_MAX	 512
#define SANDBOX_NAME_MAX 32
static char sandbox_names[SANDBOX_NR_MAX][SANDBOX_NAME_MAX];

/* The calling thread's own filter, if any: for the SIGSYS handler's line. */
static _Thread_local int sandbox_kind = -1;
static const char *const sandbox_kind_names[SANDBOX_THREAD_KINDS] = {
	"vCPU", "I/O thread", "console thread", "API thread"};

/* System calls allowed whatever their arguments, grouped by who needs them. */
static const char *const sandbox_allowed[] = {
	/* Every thread: glibc's locks, allocator, thread exit and signal return. */
	"futex",
	"brk",
	"munmap",
	"madvise",
	"mremap",
	"exit",
	"exit_group",
	"rt_sigreturn",
	"rt_sigprocmask",
	"restart_syscall",
	"sched_yield",
	"getpid",
	"gettid",
	"clock_gettime",
	"clock_nanosleep",
	"nanosleep",
	"gettimeofday",
	/* New vCPU threads after a reboot: glibc's per-thread set-up, then naming them. */
	"set_robust_list",
	"rseq",
	"sched_getaffinity",
	/* vCPU kicks: pthread_kill() to bring a thread out of KVM_RUN. */
	"tgkill",
	/* Every fd the device models and the API thread use. */
	"read",
	"write",
	"readv",
	"writev",
	"pread64",
	"pwrite64",
	"preadv",
	"pwritev",
	"close",
	"lseek",
	"fcntl",
	"dup",
	/*
	 * Files: rebooting reads the kernel and initrd again and names the new
	 * vCPU threads through /proc/self/task/T/comm; a restore reads the memory
	 * file; a snapshot (the API thread) creates its directory and files, syncs
	 * and renames them into place; the block layer syncs and punches holes.
	 */
	"openat",
	"newfstatat",
	"fstat",
	"statx",
	"mkdir",
	"mkdirat",
	"rename",
	"renameat",
	"renameat2",
	"unlink",
	"unlinkat",
	"fsync",
	"fdatasync",
	"ftruncate",
	"fallocate",
	"getdents64",
	/* Overlay paths made absolute when a snapshot freezes a disk (block/overlay.c). */
	"getcwd",
	/* Guest memory: a reboot makes a new memfd (gmem_init). */
	"memfd_create",
	/* Event loops: the I/O thread (epoll, eventfds, the balloon's timerfd), the main thread. */
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"eventfd2",
	"timerfd_create",
	"timerfd_settime",
	"timerfd_gettime",
	"poll",
	"ppoll",
	"select",
	"pselect6",
	/*
	 * The block layer's io_uring engine: its rings are set up at start-up;
	 * at exit their eventfds are unregistered.
	 */
	"io_uring_enter",
	"io_uring_register",
	/* virtio-rng. */
	"getrandom",
	/*
	 * Unix sockets (the family is checked on socket() and socketpair()):
	 * the API thread accepts and answers connections, the console input
	 * thread accepts its client, vsock connects and accepts on behalf of
	 * the guest.
	 */
	"connect",
	"accept",
	"accept4",
	"recvfrom",
	"sendto",
	"recvmsg",
	"sendmsg",
	"shutdown",
	"getsockopt",
	"setsockopt",
	"getsockname",
	"getpeername",
};

/*
 * Per-thread filters (sandbox_seccomp_thread), stacked on the process-wide
 * one: a call goes through only if both allow it. These lists say what the
 * thread does once it runs, found by running the test suite with these
 * filters in log mode (the audit lines name the thread) and by reading the
 * code its work reaches.
 */

/* What every thread with a filter of its own does, whatever its work. */
static const char *const sandbox_thread_base[] = {
	/* glibc's locks (the vCPU gate, device locks), the allocator, thread exit. */
	"futex",
	"brk",
	"munmap",
	"madvise",
	"mremap",
	"exit",
	"restart_syscall",
	/*
	 * Signals: a vCPU's kick interrupts KVM_RUN, the I/O thread is asked to
	 * add its filter by one (sandbox_seccomp_thread); handlers return
	 * through rt_sigreturn.
	 */
	"rt_sigreturn",
	"rt_sigprocmask",
	/* Timers, busy polling, log lines (vDSO, or the call where there is none). */
	"clock_gettime",
	/* The SIGSYS handler: the thread's id (its name: prctl), then _exit(). */
	"gettid",
	"exit_group",
};

/*
 * A vCPU thread: KVM_RUN and the exit handlers, which are the device
 * models' PIO/MMIO handlers, run on it. What they reach besides memory
 * and locks: the console (serial output) and eventfds (power events, MSI,
 * and the resets a driver asks for: the I/O thread does their work, so
 * closing vsock's connections and finishing disk requests is not here).
 */
static const char *const sandbox_vcpu_allowed[] = {
	/*
	 * Serial output to the console: a file or pipe (write), a socket (send),
	 * waiting for room when it is full (poll). Eventfds: power and reset
	 * events, MSI through a vector's irqfd, log lines on stderr.
	 */
	"write",
	"sendto",
	"poll",
	/*
	 * MSI-X: unmasking a vector takes what fired on its eventfd meanwhile
	 * (read); a vector's eventfd is made on its first use (eventfd2), which
	 * may be an interrupt a vCPU's write raises (configuration change).
	 */
	"read",
	"eventfd2",
};

/* The ioctls a vCPU's exit handlers make, besides KVM_RUN. */
static const unsigned long sandbox_vcpu_ioctls[] = {
	KVM_RUN,
	/* A vCPU that fails dumps its registers into the log. */
	KVM_GET_REGS,
	KVM_GET_SREGS,
	/* Legacy devices (serial, RTC, i8042, ACPI) raise their IRQ lines when the guest writes. */
	KVM_IRQ_LINE,
	/*
	 * PCI config and MSI-X table writes: the MSI route of a vector
	 * (KVM_SET_GSI_ROUTING) and its irqfd, or the message sent directly,
	 * and the queue-notify ioeventfds, bound when the BAR moves or memory
	 * decoding is turned on.
	 */
	KVM_SET_GSI_ROUTING,
	KVM_IRQFD,
	KVM_SIGNAL_MSI,
	KVM_IOEVENTFD,
	/* virtio-net: the offloads the guest takes at FEATURES_OK go to the tap. */
	TUNSETOFFLOAD,
};

/*
 * The I/O thread: every device backend's queue work, in its epoll loop.
 * No KVM ioctl but interrupts, no file opened, nothing created but
 * eventfds (MSI vectors) and AF_UNIX sockets (vsock).
 */
static const char *const sandbox_io_allowed[] = {
	/* The loop: its epoll set, its control eventfd, the queues' notify eventfds. */
	"epoll_wait",
	"epoll_pwait",
	"epoll_ctl",
	/* MSI: a vector's eventfd is made on its first interrupt, to be bound as an irqfd. */
	"eventfd2",
	/* The rate limiter's (virtio-blk) and the statistics (balloon) timers. */
	"timerfd_settime",
	"timerfd_gettime",
	/* Eventfds, taps, consoles, vsock's sockets. */
	"read",
	"write",
	"readv",
	"writev",
	"close",
	/* Disks: the synchronous engine, syncs and discards (punching holes), io_uring. */
	"preadv",
	"pwritev",
	"pwritev2",
	"fdatasync",
	"fallocate",
	"io_uring_enter",
	/* virtio-rng. */
	"getrandom",
	/*
	 * vsock: the guest connects to host unix sockets (socket() is checked
	 * below), host clients connect to the guest's ports, half-closes.
	 */
	"connect",
	"accept4",
	"recvfrom",
	"sendto",
	"sendmsg",
	"shutdown",
};

/*
 * A console input thread: waits for input (stdin, or the unix socket's
 * client), reads it and hands it to the UART or the virtio console, which
 * raise their interrupt or kick a queue; takes and turns away socket
 * clients. It opens nothing and makes no socket.
 */
static const char *const sandbox_console_allowed[] = {
	/* Its loop: the stop eventfd, the input fd, the listening socket. */
	"poll",
	"ppoll",
	"read",
	"accept4",
	/* A client that leaves, or a second one turned away. */
	"close",
	/* Kicks (eventfds: virtio-console's receive queue, a stop on Ctrl-A x), log lines. */
	"write",
};

/*
 * The UART raises its IRQ line when input arrives; Ctrl-A x on a terminal
 * puts it back the way it was.
 */
static const unsigned long sandbox_console_ioctls[] = {
	KVM_IRQ_LINE,
	KVM_SIGNAL_MSI,
	TCGETS,
	TCSETS,
};

/*
 * The API thread: libmicrohttpd's loop on the unix socket, and the
 * handlers. Those reach the machine: pause and resume (kicking vCPUs,
 * waiting for disk requests, the guest clock), snapshots (vCPU, irqchip and
 * clock state read through ioctls, files created, written, synced and
 * renamed into place), actions that raise interrupts, balloon targets and
 * disk limits; live migration (a socket to the destination, its family
 * checked by the process-wide filter, and dirty logging switched on the
 * memory slots). What it never does: create a VM, vCPU, memfd or thread,
 * or set a vCPU's registers.
 */
static const char *const sandbox_api_allowed[] = {
	/* The server: its wake-up pipe or eventfd, the listening socket, connections. */
	"poll",
	"ppoll",
	"select",
	"pselect6",
	"epoll_wait",
	"epoll_pwait",
	"epoll_ctl",
	"accept",
	"accept4",
	"recvfrom",
	"sendto",
	"recvmsg",
	"sendmsg",
	"shutdown",
	"getsockopt",
	"setsockopt",
	"getsockname",
	"getpeername",
	"fcntl",
	"read",
	"write",
	"readv",
	"writev",
	"close",
	/* Pausing: vCPUs are kicked out of KVM_RUN; the I/O thread parks. */
	"tgkill",
	"getpid",
	"sched_yield",
	"nanosleep",
	"clock_nanosleep",
	"io_uring_enter",
	/* Interrupts for config changes (balloon), the statistics and rate-limit timers. */
	"eventfd2",
	"timerfd_settime",
	"timerfd_gettime",
	/* Snapshots: the directory, state and sparse memory files, synced, renamed in place. */
	"openat",
	"newfstatat",
	"fstat",
	"statx",
	"lseek",
	"mkdir",
	"mkdirat",
	"rename",
	"renameat",
	"renameat2",
	"unlink",
	"unlinkat",
	"pread64",
	"pwrite64",
	"preadv",
	"pwritev",
	"pwritev2",
	"fsync",
	"fdatasync",
	"ftruncate",
	"fallocate",
	"getdents64",
	/* A snapshot freezing a disk makes its overlay paths absolute (block/overlay.c). */
	"getcwd",
	/* Clones: random MACs for their NICs (clone.c). */
	"getrandom",
	/* Live migration: the connection to the destination (migrate.c). */
	"socket",
	"connect",
};

/* Reading the machine's state, interrupts from actions; nothing that creates or runs. */
static const unsigned long sandbox_api_ioctls[] = {
	/*
	 * A snapshot first completes what a vCPU left half-done (an I/O exit)
	 * with KVM_RUN under immediate_exit, which returns without running the
	 * guest; seccomp cannot read that flag, so the request is allowed.
	 */
	KVM_RUN,
	KVM_IRQ_LINE,
	KVM_SET_GSI_ROUTING,
	KVM_IRQFD,
	KVM_SIGNAL_MSI,
	KVM_GET_CLOCK,
	KVM_SET_CLOCK,
	KVM_GET_IRQCHIP,
	KVM_GET_PIT2,
	KVM_GET_REGS,
	KVM_GET_SREGS,
	KVM_GET_FPU,
	KVM_GET_LAPIC,
	KVM_GET_MSRS,
	KVM_GET_XSAVE,
	KVM_GET_XSAVE2,
	KVM_GET_XCRS,
	KVM_GET_DEBUGREGS,
	KVM_GET_MP_STATE,
	KVM_GET_VCPU_EVENTS,
	KVM_GET_TSC_KHZ,
	KVM_CHECK_EXTENSION,
	/* A snapshot freezing a disk on a block device checks its size. */
	BLKGETSIZE64,
	/* Dirty logging for diff snapshots and migration (kvm/dirty.c). */
	KVM_SET_USER_MEMORY_REGION,
	KVM_GET_DIRTY_LOG,
	KVM_CLEAR_DIRTY_LOG,
	KVM_ENABLE_CAP,
};

/* The ioctls device backends make on the I/O thread. */
static const unsigned long sandbox_io_ioctls[] = {
	/* Completions interrupt the guest: legacy IRQ lines, MSI (routes, irqfds, direct). */
	KVM_IRQ_LINE,
	KVM_SIGNAL_MSI,
	KVM_SET_GSI_ROUTING,
	KVM_IRQFD,
	/* virtio-net: offloads follow the guest's features; queue pairs are attached as enabled. */
	TUNSETOFFLOAD,
	TUNSETQUEUE,
};

/* The ioctls a running VM makes; any other request number is refused. */
static const unsigned long sandbox_ioctls[] = {
	/* /dev/kvm, when a reboot builds a new VM. */
	KVM_CREATE_VM,
	KVM_CHECK_EXTENSION,
	/* The VM: memory slots, irqchip, interrupt routing, ioeventfds and irqfds, clock. */
	KVM_SET_USER_MEMORY_REGION,
	KVM_CREATE_IRQCHIP,
	KVM_CREATE_PIT2,
	KVM_SET_TSS_ADDR,
	KVM_SET_IDENTITY_MAP_ADDR,
	KVM_CREATE_VCPU,
	KVM_IRQ_LINE,
	KVM_SET_GSI_ROUTING,
	KVM_IRQFD,
	KVM_SIGNAL_MSI,
	KVM_IOEVENTFD,
	KVM_GET_CLOCK,
	KVM_SET_CLOCK,
	KVM_GET_IRQCHIP,
	KVM_SET_IRQCHIP,
	KVM_GET_PIT2,
	KVM_SET_PIT2,
	/* vCPUs: running them, their boot state, and their state in snapshots. */
	KVM_RUN,
	KVM_SET_CPUID2,
	KVM_GET_REGS,
	KVM_SET_REGS,
	KVM_GET_SREGS,
	KVM_SET_SREGS,
	KVM_GET_FPU,
	KVM_SET_FPU,
	KVM_GET_LAPIC,
	KVM_SET_LAPIC,
	KVM_GET_MSRS,
	KVM_SET_MSRS,
	KVM_GET_XSAVE,
	KVM_GET_XSAVE2,
	KVM_SET_XSAVE,
	KVM_GET_XCRS,
	KVM_SET_XCRS,
	KVM_GET_DEBUGREGS,
	KVM_SET_DEBUGREGS,
	KVM_GET_MP_STATE,
	KVM_SET_MP_STATE,
	KVM_GET_VCPU_EVENTS,
	KVM_SET_VCPU_EVENTS,
	KVM_GET_TSC_KHZ,
	KVM_SET_TSC_KHZ,
	/* Taps: offloads follow the guest's features, queues follow its queue count. */
	TUNSETOFFLOAD,
	TUNSETQUEUE,
	/* A stdio console puts the terminal back when the VMM exits. */
	TCGETS,
	TCSETS,
	/* A snapshot freezing a disk on a block device measures it for the overlay. */
	BLKGETSIZE64,
	/* Dirty-page tracking for diff snapshots and migration (kvm/dirty.c), API thread. */
	KVM_GET_DIRTY_LOG,
	KVM_CLEAR_DIRTY_LOG,
	KVM_ENABLE_CAP,
};

static const char *sandbox_syscall_name(int nr)
{
	if (nr >= 0 && nr < SANDBOX_NR_MAX && sandbox_names[nr][0])
		return sandbox_names[nr];
	return "unknown";
}

static size_t sandbox_append(char *buf, size_t at, size_t size, const char *s)
{
	while (*s && at + 1 < size)
		buf[at++] = *s++;
	buf[at] = '\0';
	return at;
}

static size_t sandbox_append_uint(char *buf, size_t at, size_t size, unsigned long v)
{
	char digits[24];
	int n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < (int)sizeof(digits));
	while (n && at + 1 < size)
		buf[at++] = digits[--n];
	buf[at] = '\0';
	return at;
}

/*
 * A forbidden system call: say which and on which thread, then exit. Only
 * async-signal-safe calls that the filter allows (prctl's PR_GET_NAME,
 * gettid, write, exit_group).
 */
static void sandbox_sigsys(int sig, siginfo_t *si, void *uc)
{
	char line[160], name[17] = "?";
	size_t n = 0;

	(void)sig;
	(void)uc;
	prctl(PR_GET_NAME, name);
	name[16] = '\0';
	n = sandbox_append(line, n, sizeof(line), "bunshin-vmm: seccomp: forbidden system call ");
	n = sandbox_append(line, n, sizeof(line), sandbox_syscall_name(si->si_syscall));
	n = sandbox_append(line, n, sizeof(line), " (");
	n = sandbox_append_uint(line, n, sizeof(line), (unsigned long)si->si_syscall);
	n = sandbox_append(line, n, sizeof(line), ") on thread ");
	n = sandbox_append(line, n, sizeof(line), name);
	n = sandbox_append(line, n, sizeof(line), " (");
	n = sandbox_append_uint(line, n, sizeof(line), (unsigned long)gettid());
	if (sandbox_kind >= 0 && sandbox_kind < SANDBOX_THREAD_KINDS) {
		n = sandbox_append(line, n, sizeof(line), ", ");
		n = sandbox_append(line, n, sizeof(line), sandbox_kind_names[sandbox_kind]);
		n = sandbox_append(line, n, sizeof(line), " filter");
	}
	n = sandbox_append(line, n, sizeof(line), "); exiting\n");
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to say it: the exit status still does */
	}
	_exit(VMM_EXIT_ERROR);
}

static void sandbox_load_names(void)
{
	for (int nr = 0; nr < SANDBOX_NR_MAX; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (s) {
			strncpy(sandbox_names[nr], s, SANDBOX_NAME_MAX - 1);
			free(s);
		}
	}
}

static int sandbox_allow(scmp_filter_ctx ctx, const char *name, struct error *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	int ret;

	if (nr == __NR_SCMP_ERROR)
		return error_set(err, EINVAL, "seccomp: unknown system call %s", name);
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	return ret ? error_set(err, -ret, "seccomp: allowing %s: %s", name, strerror(-ret)) : 0;
}

static int sandbox_rule(int ret, const char *what, struct error *err)
{
	return ret ? error_set(err, -ret, "seccomp: %s: %s", what, strerror(-ret)) : 0;
}

static int sandbox_allow_list(scmp_filter_ctx ctx, const char *const *names, size_t n,
			      struct error *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < n; i++)
		ret = sandbox_allow(ctx, names[i], err);
	return ret;
}

static int sandbox_allow_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n,
				struct error *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < n; i++)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
						    SCMP_A1(SCMP_CMP_EQ, reqs[i])),
				   "ioctl", err);
	return ret;
}

/* Memory for the allocator and thread stacks, never executable; naming threads. */
static int sandbox_add_memory_and_names(scmp_filter_ctx ctx, struct error *err)
{
	int ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
						SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
			       "mmap", err);

	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
						    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
				   "mprotect", err);
	/* The SIGSYS handler reads the thread's name. */
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
						    SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME)),
				   "prctl", err);
	return ret;
}

/* The system calls allowed only with some arguments. */
static int sandbox_add_filtered(scmp_filter_ctx ctx, struct error *err)
{
	int ret = sandbox_allow_ioctls(ctx, sandbox_ioctls, ARRAY_SIZE(sandbox_ioctls), err);

	/* Unix sockets only: vsock's guest-initiated connections. No network sockets. */
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
						    SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
				   "socket", err);
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
						    SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
				   "socketpair", err);
	/*
	 * Live migration (migrate.c, API thread) connects to its destination
	 * over TCP: stream sockets of the two IP families, nothing else.
	 */
	for (int fam = 0; !ret && fam < 2; fam++)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
						    SCMP_A0(SCMP_CMP_EQ, fam ? AF_INET6 : AF_INET),
						    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM)),
				   "socket", err);
	/* No new executable memory: guest RAM, thread stacks, allocator arenas are never PROT_EXEC.
	 */
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
						    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
				   "mmap", err);
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
						    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
				   "mprotect", err);
	/* Threads (new vCPUs after a reboot), never processes: a VMM never forks. */
	if (!ret)
		ret = sandbox_rule(
			seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
					 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)),
			"clone", err);
	/*
	 * clone3's flags are in memory seccomp cannot read: answer ENOSYS, and
	 * glibc falls back to clone(), whose flags the rule above checks.
	 */
	if (!ret)
		ret = sandbox_rule(
			seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0),
			"clone3", err);
	/* Thread names: glibc names the calling thread with PR_SET_NAME, the SIGSYS handler reads
	 * it. */
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
						    SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME)),
				   "prctl", err);
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
						    SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME)),
				   "prctl", err);
	/*
	 * vCPU and I/O threads add their own filter on top of this one
	 * (sandbox_seccomp_thread): a plain filter, no flags (no TSYNC, no
	 * listener), which can only take calls away.
	 */
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 2,
						    SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER),
						    SCMP_A1(SCMP_CMP_EQ, 0)),
				   "seccomp", err);
	return ret;
}

#ifdef SANDBOX_SANITIZER
/*
 * ASan/UBSan builds (the test suite) only, never release builds: the
 * sanitizer runtime's own system calls. Its allocator and reports use
 * sigaltstack, readlink and /proc; LeakSanitizer's check at exit stops the
 * world with a tracer that shares the address space but is not a thread
 * (clone without CLONE_THREAD, with CLONE_VM) and ptraces every thread.
 */
static int sandbox_add_sanitizer(scmp_filter_ctx ctx, struct error *err)
{
	static const char *const names[] = {
		"sigaltstack", "readlink",	 "readlinkat", "ptrace",       "wait4",
		"waitid",      "sched_getparam", "getppid",    "rt_sigaction", "rt_sigtimedwait",
		"kill",	       "prctl",		 "getrlimit",  "prlimit64",    "setrlimit",
		"access",      "open",		 "getdents"};
	int ret = 0;

	for (size_t i = 0; !ret && i < ARRAY_SIZE(names); i++)
		ret = sandbox_allow(ctx, names[i], err);
	if (!ret)
		ret = sandbox_rule(
			seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
					 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_VM, CLONE_VM)),
			"clone", err);
	return ret;
}
#endif

static int sandbox_build(scmp_filter_ctx ctx, struct error *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < ARRAY_SIZE(sandbox_allowed); i++)
		ret = sandbox_allow(ctx, sandbox_allowed[i], err);
	if (!ret)
		ret = sandbox_add_filtered(ctx, err);
#ifdef SANDBOX_SANITIZER
	if (!ret)
		ret = sandbox_add_sanitizer(ctx, err);
#endif
	/* Every thread, present and future: they all run under the same filter. */
	if (!ret)
		ret = sandbox_rule(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1), "TSYNC", err);
	return ret;
}

/* ---- per-thread filters ---- */

/* Asks a thread started before the process-wide filter to add its own. */
#define SANDBOX_THREAD_SIGNAL (SIGRTMIN + 2)
#define SANDBOX_WAITING_MAX   16

/*
 * Compiled once, by sandbox_seccomp_install(), before any filter: loading
 * one from a signal handler must not allocate, and libseccomp does.
 */
static struct sock_filter *sandbox_progs[SANDBOX_THREAD_KINDS];
static unsigned short sandbox_prog_len[SANDBOX_THREAD_KINDS];

static pthread_mutex_t sandbox_lock = PTHREAD_MUTEX_INITIALIZER;
static enum { SANDBOX_PENDING, SANDBOX_ON, SANDBOX_NONE } sandbox_state; /* under sandbox_lock */
static pid_t sandbox_waiting[SANDBOX_WAITING_MAX]; /* threads started before it */
static unsigned int sandbox_nwaiting;
static atomic_uint sandbox_acks;
static atomic_int sandbox_thread_err;

#ifdef BUNSHIN_TEST_HOOKS
static int sandbox_selftest_kind = -1;
#endif

/* Async-signal-safe: a raw seccomp() with a program compiled beforehand. */
static int sandbox_thread_load(int kind)
{
	struct sock_fprog prog = {.len = sandbox_prog_len[kind], .filter = sandbox_progs[kind]};

	if (!prog.filter)
		return -EINVAL;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
#ifdef BUNSHIN_TEST_HOOKS
	/*
	 * A call the process allows and this thread's filter does not: opening
	 * a file (snapshots do), or for the API thread, which takes snapshots,
	 * a memfd (a reboot makes one).
	 */
	if (sandbox_selftest_kind == kind) {
		long fd =
			kind == SANDBOX_THREAD_API
				? syscall(SYS_memfd_create, "bunshin-selftest", MFD_CLOEXEC)
				: syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd >= 0)
			close((int)fd);
	}
#endif
	return 0;
}

static void sandbox_thread_signal(int sig)
{
	int saved = errno;
	int ret = sandbox_thread_load(sandbox_kind);

	(void)sig;
	if (ret)
		atomic_store(&sandbox_thread_err, ret);
	atomic_fetch_add(&sandbox_acks, 1);
	errno = saved;
}

void sandbox_seccomp_thread(enum sandbox_thread kind)
{
	static const char failed[] = "bunshin-vmm: seccomp: a thread could not add its filter\n";
	bool now = false;
	sigset_t sys;

	sandbox_kind = (int)kind;
	/*
	 * vCPU threads block every signal but their kick: a SIGSYS blocked
	 * when the filter raises it kills the process without a word.
	 */
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	pthread_mutex_lock(&sandbox_lock);
	if (sandbox_state == SANDBOX_ON)
		now = true;
	else if (sandbox_state == SANDBOX_PENDING && sandbox_nwaiting < SANDBOX_WAITING_MAX)
		sandbox_waiting[sandbox_nwaiting++] = gettid();
	pthread_mutex_unlock(&sandbox_lock);
	/* A thread that should be sandboxed and is not must not run on. */
	if (now && sandbox_thread_load((int)kind)) {
		if (write(STDERR_FILENO, failed, sizeof(failed) - 1) < 0) {
			/* the exit status still says it */
		}
		_exit(VMM_EXIT_ERROR);
	}
}

static int sandbox_build_thread(scmp_filter_ctx ctx, enum sandbox_thread kind, struct error *err)
{
	int ret =
		sandbox_allow_list(ctx, sandbox_thread_base, ARRAY_SIZE(sandbox_thread_base), err);

	if (ret)
		return ret;
	if (kind == SANDBOX_THREAD_VCPU) {
		ret = sandbox_allow_list(ctx, sandbox_vcpu_allowed,
					 ARRAY_SIZE(sandbox_vcpu_allowed), err);
		if (!ret)
			ret = sandbox_allow_ioctls(ctx, sandbox_vcpu_ioctls,
						   ARRAY_SIZE(sandbox_vcpu_ioctls), err);
	} else if (kind == SANDBOX_THREAD_API) {
		ret = sandbox_allow_list(ctx, sandbox_api_allowed, ARRAY_SIZE(sandbox_api_allowed),
					 err);
		if (!ret)
			ret = sandbox_allow_ioctls(ctx, sandbox_api_ioctls,
						   ARRAY_SIZE(sandbox_api_ioctls), err);
	} else if (kind == SANDBOX_THREAD_CONSOLE) {
		ret = sandbox_allow_list(ctx, sandbox_console_allowed,
					 ARRAY_SIZE(sandbox_console_allowed), err);
		if (!ret)
			ret = sandbox_allow_ioctls(ctx, sandbox_console_ioctls,
						   ARRAY_SIZE(sandbox_console_ioctls), err);
	} else {
		ret = sandbox_allow_list(ctx, sandbox_io_allowed, ARRAY_SIZE(sandbox_io_allowed),
					 err);
		if (!ret)
			ret = sandbox_allow_ioctls(ctx, sandbox_io_ioctls,
						   ARRAY_SIZE(sandbox_io_ioctls), err);
		/* vsock's connections to host unix sockets. */
		if (!ret)
			ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket),
							    1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
					   "socket", err);
	}
	if (!ret)
		ret = sandbox_add_memory_and_names(ctx, err);
#ifdef SANDBOX_SANITIZER
	if (!ret)
		ret = sandbox_add_sanitizer(ctx, err);
#endif
	return ret;
}

/* The BPF program libseccomp makes of a filter, read back through a memfd. */
static int sandbox_export(scmp_filter_ctx ctx, enum sandbox_thread kind, struct error *err)
{
	int fd = memfd_create("bunshin-seccomp", MFD_CLOEXEC);
	struct stat st;
	int ret;

	if (fd < 0)
		return error_set(err, errno, "seccomp: memfd_create: %s", strerror(errno));
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		ret = error_set(err, -ret, "seccomp: exporting a thread filter: %s",
				strerror(-ret));
	else if (fstat(fd, &st) < 0)
		ret = error_set(err, errno, "seccomp: fstat: %s", strerror(errno));
	else if (!st.st_size || st.st_size % sizeof(struct sock_filter) ||
		 st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		ret = error_set(err, E2BIG, "seccomp: a thread filter of %lld bytes",
				(long long)st.st_size);
	else if (!(sandbox_progs[kind] = malloc((size_t)st.st_size)))
		ret = error_set(err, ENOMEM, "out of memory");
	else if (pread(fd, sandbox_progs[kind], (size_t)st.st_size, 0) != st.st_size)
		ret = error_set(err, EIO, "seccomp: reading a thread filter back");
	else
		sandbox_prog_len[kind] = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	close(fd);
	return ret;
}

static int sandbox_compile_threads(enum sandbox_seccomp mode, struct error *err)
{
	int ret = 0;

	for (int kind = 0; !ret && kind < SANDBOX_THREAD_KINDS; kind++) {
		scmp_filter_ctx ctx =
			seccomp_init(mode == SANDBOX_SECCOMP_KILL ? SCMP_ACT_TRAP : SCMP_ACT_LOG);

		if (!ctx)
			return error_set(err, ENOMEM, "seccomp: out of memory");
		ret = sandbox_build_thread(ctx, (enum sandbox_thread)kind, err);
		if (!ret)
			ret = sandbox_export(ctx, (enum sandbox_thread)kind, err);
		seccomp_release(ctx);
	}
	return ret;
}

/*
 * The process-wide filter is in: from now on threads add theirs as they
 * start, and those already running are asked to, and waited for (they are
 * idle: no guest code has run yet).
 */
static int sandbox_start_threads(struct error *err)
{
	pid_t waiting[SANDBOX_WAITING_MAX];
	unsigned int n;
	pid_t pid = getpid();

	pthread_mutex_lock(&sandbox_lock);
	sandbox_state = SANDBOX_ON;
	n = sandbox_nwaiting;
	memcpy(waiting, sandbox_waiting, n * sizeof(waiting[0]));
	pthread_mutex_unlock(&sandbox_lock);
	for (unsigned int i = 0, nwaiting = n; i < nwaiting; i++) {
		if (syscall(SYS_tgkill, pid, waiting[i], SANDBOX_THREAD_SIGNAL) == 0)
			continue;
		if (errno != ESRCH)
			return error_set(err, errno, "seccomp: signalling thread %d: %s",
					 (int)waiting[i], strerror(errno));
		n--; /* it has ended: nothing left to sandbox */
	}
	/* Idle threads answer within microseconds: poll finely, give up after 5 s. */
	for (int i = 0; atomic_load(&sandbox_acks) < n; i++) {
		if (i == 100000)
			return error_set(err, ETIMEDOUT,
					 "seccomp: threads did not add their filters");
		nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
	}
	if (atomic_load(&sandbox_thread_err))
		return error_set(err, -atomic_load(&sandbox_thread_err),
				 "seccomp: adding a thread filter: %s",
				 strerror(-atomic_load(&sandbox_thread_err)));
	return 0;
}

int sandbox_seccomp_install(enum sandbox_seccomp mode, struct error *err)
{
	struct sigaction sa = {.sa_sigaction = sandbox_sigsys, .sa_flags = SA_SIGINFO};
	struct sigaction ask = {.sa_handler = sandbox_thread_signal, .sa_flags = SA_RESTART};
	scmp_filter_ctx ctx;
	int ret;

	if (mode == SANDBOX_SECCOMP_OFF) {
		pthread_mutex_lock(&sandbox_lock);
		sandbox_state = SANDBOX_NONE;
		pthread_mutex_unlock(&sandbox_lock);
		return 0;
	}
#ifdef BUNSHIN_TEST_HOOKS
	{
		const char *selftest = getenv("BUNSHIN_SECCOMP_SELFTEST");

		if (selftest && !strcmp(selftest, "vcpu"))
			sandbox_selftest_kind = SANDBOX_THREAD_VCPU;
		else if (selftest && !strcmp(selftest, "io"))
			sandbox_selftest_kind = SANDBOX_THREAD_IO;
		else if (selftest && !strcmp(selftest, "console"))
			sandbox_selftest_kind = SANDBOX_THREAD_CONSOLE;
		else if (selftest && !strcmp(selftest, "api"))
			sandbox_selftest_kind = SANDBOX_THREAD_API;
	}
#endif
	/* No setuid/file-capability gains from here on; seccomp requires it without CAP_SYS_ADMIN.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return error_set(err, errno, "seccomp: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (mode == SANDBOX_SECCOMP_KILL) {
		sandbox_load_names();
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) < 0)
			return error_set(err, errno, "seccomp: SIGSYS handler: %s",
					 strerror(errno));
	}
	/*
	 * kill: SIGSYS, caught only to say which call on which thread before
	 * exiting (rt_sigaction is not allowed, so nothing can take the handler
	 * over, and a blocked SIGSYS kills the process outright).
	 */
	ret = sandbox_compile_threads(mode, err);
	if (ret)
		return ret;
	/* Threads started earlier add their filter when this signal asks them to. */
	sigemptyset(&ask.sa_mask);
	if (sigaction(SANDBOX_THREAD_SIGNAL, &ask, NULL) < 0)
		return error_set(err, errno, "seccomp: thread filter signal: %s", strerror(errno));
	ctx = seccomp_init(mode == SANDBOX_SECCOMP_KILL ? SCMP_ACT_TRAP : SCMP_ACT_LOG);
	if (!ctx)
		return error_set(err, ENOMEM, "seccomp: out of memory");
	ret = sandbox_build(ctx, err);
	if (!ret)
		ret = sandbox_rule(seccomp_load(ctx), "loading the filter", err);
	seccomp_release(ctx);
	return ret ? ret : sandbox_start_threads(err);
}

#ifdef BUNSHIN_TEST_HOOKS
void sandbox_seccomp_selftest(void)
{
	int fd;

	if (!getenv("BUNSHIN_SECCOMP_SELFTEST") || sandbox_selftest_kind >= 0)
		return;
	/*
	 * A datagram network socket: nothing in a running VMM makes one (a
	 * migration makes stream ones). --seccomp=log lets it through.
	 */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
}
#endif
