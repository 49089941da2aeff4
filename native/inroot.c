/* Paths inside the untrusted rootfs. A symlink planted in the image may point anywhere; with
 * openat2(RESOLVE_IN_ROOT) the kernel resolves it as if rootfd were "/", so "..", absolute
 * targets and symlinks all stay inside. Missing components are created one at a time in a
 * parent resolved the same way; mount(2) then gets /proc/self/fd/N, never a path string. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_LINKS 40 /* as the kernel's own limit on symlinks in one lookup */

const char *fd_path(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

static int resolve(int rootfd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		/* No magic links: /proc/self/root and friends would lead out of the root. */
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd;
	do
		fd = (int)syscall(SYS_openat2, rootfd, path[0] ? path : ".", &how, sizeof how);
	while (fd < 0 && errno == EAGAIN); /* a concurrent rename: the kernel asks to retry */
	return fd;
}

static int create_path(int rootfd, const char *path, enum inroot_create create, int depth)
{
	int fd = resolve(rootfd, path);
	if (fd >= 0 || errno != ENOENT || create == INROOT_NONE)
		return fd;
	/* Walk the prefixes "a", "a/b", "a/b/c" of the path; create each one that is missing. */
	for (const char *end = path; *end;) {
		char prefix[PATH_MAX], name[NAME_MAX + 1], target[PATH_MAX], next[PATH_MAX];
		while (*end == '/')
			end++;
		if (!*end)
			break;
		const char *start = end;
		while (*end && *end != '/')
			end++;
		if (end - path >= PATH_MAX || end - start > NAME_MAX)
			return errno = ENAMETOOLONG, -1;
		snprintf(prefix, sizeof prefix, "%.*s", (int)(end - path), path);
		snprintf(name, sizeof name, "%.*s", (int)(end - start), start);
		if ((fd = resolve(rootfd, prefix)) >= 0 || errno != ENOENT) {
			if (fd < 0)
				return -1;
			close(fd);
			continue;
		}
		prefix[start - path] = 0; /* now the parent directory */
		int parent = resolve(rootfd, prefix), r;
		if (parent < 0)
			return -1;
		if (!end[strspn(end, "/")] && create == INROOT_FILE) {
			r = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (r >= 0)
				close(r);
		} else {
			r = mkdirat(parent, name, 0755);
		}
		/* It exists, yet the lookup said ENOENT: a dangling symlink. Create what it points
		 * to, inside the root, as container runtimes do. */
		int err = r < 0 ? errno : 0;
		ssize_t n = err == EEXIST ? readlinkat(parent, name, target, sizeof target - 1) : -1;
		close(parent);
		if (n >= 0 && depth < MAX_LINKS) {
			target[n] = 0; /* next: "parent/target/rest", or "target/rest" when absolute */
			int abs = target[0] == '/';
			if (snprintf(next, sizeof next, "%s%s%s%s", abs ? "" : prefix, abs ? "" : "/", target, end) >= PATH_MAX)
				return errno = ENAMETOOLONG, -1;
			return create_path(rootfd, next, create, depth + 1);
		}
		if (err)
			return errno = n >= 0 ? ELOOP : err, -1;
	}
	return resolve(rootfd, path);
}

int inroot_open(int rootfd, const char *path, enum inroot_create create)
{
	return create_path(rootfd, path, create, 0);
}
