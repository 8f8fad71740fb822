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
 * most of what the others do.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

/* The system calls allowed only with some arguments. */
static int sandbox_add_filtered(scmp_filter_ctx ctx, struct error *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < ARRAY_SIZE(sandbox_ioctls); i++)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
						    SCMP_A1(SCMP_CMP_EQ, sandbox_ioctls[i])),
				   "ioctl", err);
	/* Unix sockets only: vsock's guest-initiated connections. No network sockets. */
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
						    SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
				   "socket", err);
	if (!ret)
		ret = sandbox_rule(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
						    SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
				   "socketpair", err);
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

int sandbox_seccomp_install(enum sandbox_seccomp mode, struct error *err)
{
	struct sigaction sa = {.sa_sigaction = sandbox_sigsys, .sa_flags = SA_SIGINFO};
	scmp_filter_ctx ctx;
	int ret;

	if (mode == SANDBOX_SECCOMP_OFF)
		return 0;
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
	ctx = seccomp_init(mode == SANDBOX_SECCOMP_KILL ? SCMP_ACT_TRAP : SCMP_ACT_LOG);
	if (!ctx)
		return error_set(err, ENOMEM, "seccomp: out of memory");
	ret = sandbox_build(ctx, err);
	if (!ret)
		ret = sandbox_rule(seccomp_load(ctx), "loading the filter", err);
	seccomp_release(ctx);
	return ret;
}

#ifdef BUNSHIN_TEST_HOOKS
void sandbox_seccomp_selftest(void)
{
	int fd;

	if (!getenv("BUNSHIN_SECCOMP_SELFTEST"))
		return;
	/* A network socket: nothing in a running VMM makes one. --seccomp=log lets it through. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
}
#endif
