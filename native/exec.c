/* The final execve. A name without '/' is looked up in the container's PATH (from
 * process.env, not ours), like Docker; failures become NOTFOUND (127) or NOEXEC (126). */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

__attribute__((noreturn)) static void exec_failed(const char *name, int err)
{
	fail(err == ENOENT || err == ENOTDIR ? NOTFOUND : NOEXEC, err, "exec \"%s\"", name);
}

/* Nothing but stdio reaches the command, as with runc: every other descriptor (whatever the
 * caller of imgx-run left open, and ours) closes at exec. They stay open until then, so a failed
 * exec can still be reported. close_range(CLOEXEC) where the kernel has it (5.11+), else each fd. */
static void cloexec_from(int low)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)low, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
#endif
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (fd >= low && fd != dirfd(d))
			fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	}
	closedir(d);
}

void exec_command(const struct spec *s)
{
	const char *name = s->args[0], *path = DEFAULT_PATH;
	cloexec_from(3);
	if (strchr(name, '/')) {
		execve(name, s->args, s->env);
		exec_failed(name, errno);
	}
	for (char **e = s->env; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0) {
			path = *e + 5; /* the first one, as getenv() finds it */
			break;
		}
	int denied = 0;
	for (const char *dir = path;; dir++) {
		char file[PATH_MAX];
		size_t len = strcspn(dir, ":");
		/* An empty entry means the current directory, as in execvp. */
		if (snprintf(file, sizeof file, "%.*s/%s", (int)(len ? len : 1), len ? dir : ".", name) < (int)sizeof file) {
			execve(file, s->args, s->env);
			if (errno == EACCES)
				denied = 1; /* keep looking, but say so if nothing else runs */
			else if (errno != ENOENT && errno != ENOTDIR)
				exec_failed(name, errno);
		}
		dir += len;
		if (!*dir)
			break;
	}
	if (denied)
		exec_failed(name, EACCES);
	fail(NOTFOUND, 0, "exec \"%s\": executable file not found in $PATH", name);
}
