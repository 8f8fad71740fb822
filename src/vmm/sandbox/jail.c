// SPDX-License-Identifier: MIT
/*
 * Entering the jail: namespaces, a new root, device nodes, rlimits, an
 * unprivileged user with no capabilities. The launcher forks once (a new
 * PID namespace needs a new process): the child becomes the jailed VMM,
 * the launcher only waits for it, forwards SIGTERM/SIGINT/SIGHUP, removes
 * the cgroup and exits with the VMM's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "../../common/log.h"
#include "jail.h"

#define JAIL_SYNC_FD 3 /* the launcher's liveness pipe, kept across close_range() */

static struct jail_info jail_state;
static volatile pid_t jail_child;

const struct jail_info *jail_info(void)
{
	return jail_state.jailed ? &jail_state : NULL;
}

/* ---- the launcher ---- */

static void jail_forward(int sig)
{
	if (jail_child > 0)
		kill(jail_child, sig);
}

static void jail_forward_signals(void)
{
	struct sigaction sa = {.sa_handler = jail_forward};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int jail_wait(pid_t pid, struct cgroup *cg)
{
	int wstatus = 0, ret;

	while ((ret = waitpid(pid, &wstatus, 0)) < 0 && errno == EINTR)
		;
	if (ret < 0)
		wstatus = 1 << 8; /* cannot happen for our own child; report an error */
	if (cg && cgroup_destroy(cg))
		log_warn("jail: could not remove cgroup %s", cg->dirs[0]);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return WEXITSTATUS(wstatus);
}

/* ---- the jailed side: file system ---- */

static int jail_node(const char *dir, const char *name, const char *host,
		     const struct jail_config *j, struct error *err)
{
	char path[4096];
	struct stat st;

	if (stat(host, &st) < 0 || !S_ISCHR(st.st_mode))
		return error_set(err, ENODEV, "jail: no %s on the host", host);
	snprintf(path, sizeof(path), "%s/dev/%s", dir, name);
	/* the node may only be used by the VMM's user and group (mode 0660, U:G) */
	if (mknod(path, S_IFCHR | 0660, st.st_rdev) < 0 || chown(path, j->uid, j->gid) < 0 ||
	    chmod(path, 0660) < 0)
		return error_set(err, errno, "jail: creating %s: %s", path, strerror(errno));
	return 0;
}

static int jail_mkdir(const char *dir, const char *name, struct error *err)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return error_set(err, errno, "jail: creating %s: %s", path, strerror(errno));
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return error_set(err, ENOTDIR, "jail: %s is not a directory", path);
	return 0;
}

/*
 * /dev is a small tmpfs of this mount namespace only: the nodes vanish
 * with the VM, none is left in DIR, and DIR's own file system may be nodev.
 */
static int jail_devices(const char *dir, const struct jail_config *j, const struct jail_vm *vm,
			struct error *err)
{
	char path[4096];
	int ret = jail_mkdir(dir, "dev", err);

	snprintf(path, sizeof(path), "%s/dev", dir);
	if (!ret && mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
		ret = error_set(err, errno, "jail: mounting a tmpfs on %s: %s", path,
				strerror(errno));
	ret = ret ?: jail_node(dir, "kvm", "/dev/kvm", j, err);
	if (ret || !vm->tun)
		return ret;
	/* the tap is opened by name: TUNSETIFF on a tap owned by U needs no capability */
	return jail_mkdir(dir, "dev/net", err) ?: jail_node(dir, "net/tun", "/dev/net/tun", j, err);
}

/* DIR becomes / ; the host's root is unmounted, leaving no mount point behind. */
static int jail_pivot(const char *dir, struct error *err)
{
	if (chdir(dir) < 0)
		return error_set(err, errno, "jail: entering %s: %s", dir, strerror(errno));
	/*
	 * new_root and put_old both ".": the old root ends up mounted on top
	 * of the new one, and unmounting it there leaves no mount point
	 * behind, so nothing is created in DIR (a directory a tenant could
	 * have prepared) and nothing has to be removed.
	 */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return error_set(err, errno, "jail: pivot_root to %s: %s", dir, strerror(errno));
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return error_set(err, errno, "jail: removing the old root: %s", strerror(errno));
	/* nothing in DIR may be a device or setuid, except the nodes of the /dev tmpfs */
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
		return error_set(err, errno, "jail: remounting / nosuid,nodev: %s",
				 strerror(errno));
	/*
	 * A /proc of the VMM's own PID namespace: it names its threads through
	 * /proc/self/task/T/comm, and it sees no other process.
	 */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return error_set(err, errno, "jail: mounting /proc: %s", strerror(errno));
	return 0;
}

static int jail_namespaces(const char *dir, int netns_fd, struct error *err)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		return error_set(err, errno, "jail: unshare: %s", strerror(errno));
	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
		return error_set(err, errno, "jail: --netns: setns: %s", strerror(errno));
	sethostname("bunshin-vm", 10);
	/* nothing mounted from here on reaches the host, and no host mount reaches us */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return error_set(err, errno, "jail: making mounts private: %s", strerror(errno));
	/* pivot_root wants the new root to be a mount point */
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return error_set(err, errno, "jail: bind-mounting %s: %s", dir, strerror(errno));
	return jail_mkdir(dir, "proc", err);
}

/* ---- the jailed side: credentials ---- */

static int jail_rlimits(struct error *err)
{
	const struct rlimit core = {0, 0}, nofile = {JAIL_NOFILE, JAIL_NOFILE};

	/*
	 * No RLIMIT_NPROC: it counts every process of the uid on the host,
	 * so it would couple VMs sharing a uid; the cgroup's pids.max bounds
	 * this VM's tasks instead.
	 */
	if (setrlimit(RLIMIT_CORE, &core) < 0 || setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return error_set(err, errno, "jail: setrlimit: %s", strerror(errno));
	return 0;
}

/* The bounding set needs CAP_SETPCAP to shrink: before the uid changes. */
static int jail_drop_bounding(struct error *err)
{
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL) /* past the last capability this kernel has */
				break;
			return error_set(err, errno, "jail: dropping capability %d: %s", cap,
					 strerror(errno));
		}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return error_set(err, errno, "jail: clearing ambient capabilities: %s",
				 strerror(errno));
	/* never root again, not even through a setuid binary or by switching uid back */
	if (prctl(PR_SET_SECUREBITS,
		  SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
			  SECBIT_KEEP_CAPS_LOCKED,
		  0, 0, 0) < 0)
		return error_set(err, errno, "jail: securebits: %s", strerror(errno));
	return 0;
}

static int jail_clear_caps(struct error *err)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};

	/* setuid() cleared permitted and effective; inheritable survives it */
	if (syscall(SYS_capset, &hdr, data) < 0)
		return error_set(err, errno, "jail: capset: %s", strerror(errno));
	if (syscall(SYS_capget, &hdr, data) < 0 || data[0].permitted || data[1].permitted ||
	    data[0].effective || data[1].effective || data[0].inheritable || data[1].inheritable)
		return error_set(err, EPERM, "jail: capabilities remain after dropping them");
	return 0;
}

static int jail_credentials(const struct jail_config *j, struct error *err)
{
	int ret = jail_rlimits(err) ?: jail_drop_bounding(err);

	if (ret)
		return ret;
	if (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0 ||
	    setresuid(j->uid, j->uid, j->uid) < 0)
		return error_set(err, errno, "jail: becoming %u:%u: %s", j->uid, j->gid,
				 strerror(errno));
	if (setuid(0) == 0)
		return error_set(err, EPERM, "jail: could switch back to root");
	ret = jail_clear_caps(err);
	if (ret)
		return ret;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return error_set(err, errno, "jail: no_new_privs: %s", strerror(errno));
	/*
	 * Changing uid made the process non-dumpable, which makes its /proc
	 * files root's: it could no longer name its own vCPU threads. The uid
	 * is the VM's own and RLIMIT_CORE is 0, so being dumpable exposes it
	 * to nothing but itself.
	 */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	return 0;
}

/* The uid change cleared it: set the parent-death signal again, then check the parent. */
static int jail_tie_to_launcher(struct error *err)
{
	struct pollfd p = {.fd = JAIL_SYNC_FD, .events = POLLIN};

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return error_set(err, errno, "jail: PR_SET_PDEATHSIG: %s", strerror(errno));
	if (poll(&p, 1, 0) != 0)
		return error_set(err, ESRCH, "jail: the launcher is gone");
	close(JAIL_SYNC_FD);
	return 0;
}

static int jail_inside(const struct jail_config *j, const struct jail_vm *vm,
		       const struct cgroup *cg, int netns_fd, int sync_fd, struct error *err)
{
	int ret;

	/* still blocked (jail_enter): pending until the VMM's signalfd takes them */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	ret = cg ? cgroup_join(cg, 0, err) : 0;
	ret = ret ?: jail_namespaces(j->dir, netns_fd, err);
	ret = ret ?: jail_devices(j->dir, j, vm, err);
	ret = ret ?: jail_pivot(j->dir, err);
	if (ret)
		return ret;
	/* only stdin, stdout, stderr and the launcher's pipe survive */
	if (dup2(sync_fd, JAIL_SYNC_FD) < 0 ||
	    syscall(SYS_close_range, JAIL_SYNC_FD + 1, ~0U, 0) < 0)
		return error_set(err, errno, "jail: closing descriptors: %s", strerror(errno));
	return jail_credentials(j, err) ?: jail_tie_to_launcher(err);
}

/* ---- both ---- */

static const struct cgroup_fs jail_cgroup_fs = {
	.root = "/sys/fs/cgroup",
	.self = "/proc/self/cgroup",
};

/* What is checked and made before the fork: refusals cost nothing yet. */
static int jail_prepare(const struct jail_config *j, const struct jail_vm *vm, struct cgroup *cg,
			int *netns_fd, struct error *err)
{
	struct cgroup_limits l;
	struct stat st;
	int ret;

	if (geteuid())
		return error_set(err, EPERM, "--jail: needs root (namespaces, pivot_root, setuid)");
	if (stat(j->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return error_set(err, ENOTDIR, "--jail: %s is not a directory", j->dir);
	if (!j->cgroup) {
		ret = 0;
	} else {
		ret = jail_limits(j, vm, &l, err);
		ret = ret ?: cgroup_create(cg, &jail_cgroup_fs, j->cgroup, &l, err);
	}
	*netns_fd = !ret && j->netns ? open(j->netns, O_RDONLY | O_CLOEXEC) : -1;
	if (!ret && j->netns && *netns_fd < 0) {
		ret = error_set(err, errno, "--netns: %s: %s", j->netns, strerror(errno));
		cgroup_destroy(cg);
	}
	return ret;
}

static void jail_record(const struct jail_config *j, const struct cgroup *cg)
{
	jail_state.jailed = true;
	jail_state.uid = j->uid;
	jail_state.gid = j->gid;
	jail_state.nofile = JAIL_NOFILE;
	if (!j->cgroup)
		return;
	jail_state.has_cgroup = true;
	snprintf(jail_state.cgroup, sizeof(jail_state.cgroup), "%s", j->cgroup);
	jail_state.version = cg->version;
	jail_state.swap_limited = cg->swap_limited;
	jail_state.limits = cg->limits;
}

/*
 * The launcher, once the child is forked: back to its own PID namespace
 * (once the VMM, the new one's init, is gone, nothing can be forked into
 * it, and a sanitizer's tracer at exit would be), then it only waits.
 */
static int jail_launcher(pid_t pid, int host_pidns, struct cgroup *cg)
{
	if (setns(host_pidns, CLONE_NEWPID) < 0)
		log_warn("jail: returning to the host PID namespace: %s", strerror(errno));
	close(host_pidns);
	return jail_wait(pid, cg);
}

/* Forks into a new PID namespace: *pid in the launcher, 0 in the child. */
static int jail_fork(int *host_pidns, pid_t *pid, struct error *err)
{
	sigset_t stop, old;

	*host_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (*host_pidns < 0 || unshare(CLONE_NEWPID) < 0)
		return error_set(err, errno, "jail: new PID namespace: %s", strerror(errno));
	/*
	 * Blocked across the fork: the launcher forwards them only once it
	 * knows the child, and the child, init of its PID namespace (which
	 * drops signals it has no handler for), keeps them pending until the
	 * VMM reads them from its signalfd.
	 */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	jail_forward_signals();
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	*pid = fork();
	if (*pid > 0)
		jail_child = *pid;
	if (*pid)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	return *pid < 0 ? error_set(err, errno, "jail: fork: %s", strerror(errno)) : 0;
}

int jail_enter(const struct jail_config *j, const struct jail_vm *vm, int *status,
	       struct error *err)
{
	struct cgroup cg = {0};
	int netns_fd = -1, host_pidns = -1, sync[2] = {-1, -1};
	pid_t pid = -1;
	int ret = jail_prepare(j, vm, &cg, &netns_fd, err);

	if (ret)
		return ret;
	if (pipe2(sync, O_CLOEXEC) < 0)
		ret = error_set(err, errno, "jail: pipe: %s", strerror(errno));
	ret = ret ?: jail_fork(&host_pidns, &pid, err);
	if (!ret && !pid) {
		close(host_pidns);
		close(sync[1]);
		jail_record(j, &cg);
		return jail_inside(j, vm, j->cgroup ? &cg : NULL, netns_fd, sync[0], err);
	}
	if (netns_fd >= 0)
		close(netns_fd);
	if (sync[0] >= 0)
		close(sync[0]);
	if (!ret) {
		/* sync[1] stays open until the launcher exits: the child's liveness check */
		*status = jail_launcher(pid, host_pidns, j->cgroup ? &cg : NULL);
		return 1;
	}
	if (sync[1] >= 0)
		close(sync[1]);
	if (host_pidns >= 0)
		close(host_pidns);
	cgroup_destroy(&cg);
	return ret;
}

#ifdef BUNSHIN_TEST_HOOKS
void jail_selftest(void)
{
	const char *host_file = getenv("BUNSHIN_JAIL_SELFTEST");
	int fd;

	if (!host_file)
		return;
	if (host_file[0] != '/')
		host_file = "/etc/hostname";
	fd = open(host_file, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		log_error("jail selftest: opened host file %s", host_file);
		close(fd);
		return;
	}
	log_warn("jail selftest: opening host file %s: %s", host_file, strerror(errno));
}
#endif
