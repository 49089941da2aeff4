/* The container's filesystem: private mount tree, rootfs (overlay or bind), the config's
 * mounts and devices, /dev symlinks, pivot_root, masked and read-only paths. Everything
 * happens in the child's own mount namespace, so it all vanishes with it. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOCKED_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
#define REMOUNT_FLAGS (LOCKED_FLAGS | MS_NOATIME | MS_NODIRATIME | MS_STRICTATIME | MS_RELATIME)

static int rootfd = -1, in_userns, devpts_on_dev_pts;

/* Flags a remount must keep. Inside a user namespace the kernel locks the flags a mount had
 * when the namespace was made (nosuid, nodev, noexec, ro): a remount that drops one is EPERM. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return 0;
	/* ST_* values are the MS_* ones. */
	return sv.f_flag & LOCKED_FLAGS;
}

static int open_dest(const char *dest, enum inroot_create create, const char *what)
{
	int fd = inroot_open(rootfd, dest, create);
	if (fd < 0)
		fail(SETUP, errno, "%s: mount point %s", what, dest);
	return fd;
}

/* Second call of a bind mount: flags the bind itself ignores. Through a fresh fd, because
 * the one used to mount refers to the directory under the new mount, not to the mount. */
static void remount_bind(const struct mount_spec *m, const char *stat_src, const char *what)
{
	char p[32];
	int fd = open_dest(m->dest, INROOT_NONE, what);
	if (mount(NULL, fd_path(fd, p), NULL, MS_REMOUNT | MS_BIND | (m->flags & REMOUNT_FLAGS) | locked_flags(stat_src), NULL) < 0)
		fail(SETUP, errno, "%s: remount %s", what, m->flags & MS_RDONLY ? "read-only" : "with its flags");
	close(fd);
}

/* Removes the gid= option from mount data (an empty option left behind is ignored). */
static void drop_gid(char *data)
{
	char *g = data;
	while ((g = strstr(g, "gid=")) && g != data && g[-1] != ',')
		g++;
	if (g)
		memmove(g, g + strcspn(g, ","), strlen(g + strcspn(g, ",")) + 1);
}

static void do_mount(const struct mount_spec *m)
{
	char what[600], p[32];
	const char *type = m->type ? m->type : "none";
	if (strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0)
		return; /* no cgroup setup in this runtime */
	if (m->bind) {
		struct stat st;
		snprintf(what, sizeof what, "mount bind %s on %s", m->source, m->dest);
		if (stat(m->source, &st) < 0)
			fail(SETUP, errno, "%s", what);
		int fd = open_dest(m->dest, S_ISDIR(st.st_mode) ? INROOT_DIR : INROOT_FILE, what);
		if (mount(m->source, fd_path(fd, p), NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
			fail(SETUP, errno, "%s", what);
		close(fd);
		if (m->flags & REMOUNT_FLAGS & ~MS_RELATIME)
			remount_bind(m, m->source, what);
	} else {
		snprintf(what, sizeof what, "mount %s on %s", type, m->dest);
		int fd = open_dest(m->dest, INROOT_DIR, what);
		const char *src = m->source ? m->source : type;
		int r = mount(src, fd_path(fd, p), type, m->flags, m->data);
		if (r < 0 && in_userns) {
			if (strcmp(type, "sysfs") == 0 && (errno == EPERM || errno == EACCES)) {
				/* sysfs needs the network namespace's owner: with the host network, show
				 * the host's /sys read-only instead, as rootless runtimes do. */
				const struct mount_spec alt = { .dest = m->dest, .flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC };
				r = mount("/sys", p, NULL, MS_BIND | MS_REC, NULL);
				if (r == 0)
					remount_bind(&alt, "/sys", what);
			} else if (strcmp(type, "devpts") == 0 && errno == EINVAL && strstr(m->data, "gid=")) {
				/* gid=5 (tty) is not mapped in a one-id user namespace. */
				drop_gid(m->data);
				r = mount(src, p, type, m->flags, m->data);
			} else if (strcmp(type, "mqueue") == 0) {
				r = 0; /* refused for a user namespace that does not own the ipc one: skip it */
			}
		}
		if (r < 0)
			fail(SETUP, errno, "%s", what);
		close(fd);
		if (strcmp(type, "devpts") == 0 && strcmp(m->dest, "/dev/pts") == 0)
			devpts_on_dev_pts = 1;
	}
	if (m->propagation) {
		int fd = open_dest(m->dest, INROOT_NONE, what);
		if (mount(NULL, fd_path(fd, p), NULL, m->propagation, NULL) < 0)
			fail(SETUP, errno, "%s: set propagation", what);
		close(fd);
	}
}

static void make_device(const struct device_spec *d)
{
	char dir[4096], p[32];
	const char *base = strrchr(d->path, '/') + 1;
	snprintf(dir, sizeof dir, "%.*s", (int)(base - d->path), d->path);
	int parent = inroot_open(rootfd, dir, INROOT_DIR);
	if (parent < 0)
		fail(SETUP, errno, "device %s: directory", d->path);
	if (mknodat(parent, base, d->type | d->mode, makedev(d->major, d->minor)) == 0) {
		if (fchownat(parent, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
			fail(SETUP, errno, "device %s: chown", d->path);
	} else if (errno == EPERM) {
		/* No mknod in a user namespace: bind the host's node onto an empty file instead. */
		int fd = inroot_open(rootfd, d->path, INROOT_FILE);
		if (fd < 0 || mount(d->path, fd_path(fd, p), NULL, MS_BIND, NULL) < 0)
			fail(SETUP, errno, "device %s: bind the host's node", d->path);
		close(fd);
	} else if (errno != EEXIST) { /* an image's own node stays */
		fail(SETUP, errno, "device %s: mknod", d->path);
	}
	close(parent);
}

/* The symlinks runc puts in /dev, for programs that expect them. */
static void dev_symlinks(void)
{
	static const char *links[][2] = {
		{ "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
	};
	int dev = inroot_open(rootfd, "/dev", INROOT_NONE);
	if (dev < 0)
		return;
	for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
		if (i == 4 && !devpts_on_dev_pts)
			break;
		if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST)
			fail(SETUP, errno, "symlink /dev/%s", links[i][1]);
	}
	close(dev);
}

static void mount_root(const struct spec *s)
{
	if (s->ovl_lower) {
		char *data;
		if (asprintf(&data, "lowerdir=%s,upperdir=%s,workdir=%s", s->ovl_lower, s->ovl_upper, s->ovl_work) < 0)
			fail(SETUP, ENOMEM, "mount overlay");
		if (mount("overlay", s->root, "overlay", 0, data) < 0)
			fail(SETUP, errno, "mount overlay on %s", s->root);
		free(data);
	} else if (mount(s->root, s->root, NULL, MS_BIND | MS_REC, NULL) < 0) {
		/* pivot_root needs the new root to be a mount point */
		fail(SETUP, errno, "bind the rootfs %s", s->root);
	}
	rootfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail(SETUP, errno, "open the rootfs %s", s->root);
}

/* pivot_root(".", ".") stacks the old root on the new one; detaching "." then drops it,
 * with no need for a directory to park it in. */
static void pivot(void)
{
	if (fchdir(rootfd) < 0)
		fail(SETUP, errno, "chdir into the rootfs");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail(SETUP, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		fail(SETUP, errno, "detach the old root");
	if (chdir("/") < 0)
		fail(SETUP, errno, "chdir /");
	close(rootfd);
}

/* After pivot_root, paths resolve inside the container's root: plain paths are safe here. */
static void mask_paths(const struct spec *s)
{
	struct stat st;
	for (size_t i = 0; i < s->nmasked; i++) {
		const char *p = s->masked[i];
		if (stat(p, &st) < 0) {
			if (errno == ENOENT)
				continue;
			fail(SETUP, errno, "masked path %s", p);
		}
		int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL)
					    : mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (r < 0)
			fail(SETUP, errno, "masked path %s", p);
	}
	for (size_t i = 0; i < s->nreadonly; i++) {
		const char *p = s->readonly[i];
		if (access(p, F_OK) < 0 && errno == ENOENT)
			continue;
		unsigned long locked = locked_flags(p);
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked, NULL) < 0)
			fail(SETUP, errno, "read-only path %s", p);
	}
}

int setup_rootfs(const struct spec *s)
{
	in_userns = !!(s->clone_flags & CLONE_NEWUSER);
	/* First: nothing done below may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail(SETUP, errno, "make the mount tree private");
	mount_root(s);
	for (size_t i = 0; i < s->nmounts; i++)
		do_mount(&s->mounts[i]);
	for (size_t i = 0; i < s->ndevices; i++)
		make_device(&s->devices[i]);
	dev_symlinks();
	/* The cwd: created (as root, like Docker does for a WORKDIR the image lacks) before the
	 * root may turn read-only; entered at the end, as the user. It comes from the image. */
	int cwd = inroot_open(rootfd, s->cwd, INROOT_DIR);
	if (cwd < 0)
		fail(SETUP, errno, "working directory %s", s->cwd);
	pivot();
	mask_paths(s);
	if (s->root_readonly &&
	    mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags("/"), NULL) < 0)
		fail(SETUP, errno, "remount the root read-only");
	return cwd;
}
