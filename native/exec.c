/* The final execve. A name without '/' is looked up in the container's PATH (from
 * process.env, not ours), like Docker; failures become NOTFOUND (127) or NOEXEC (126). */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

__attribute__((noreturn)) static void exec_failed(const char *name, int err)
{
	fail(err == ENOENT || err == ENOTDIR ? NOTFOUND : NOEXEC, err, "exec \"%s\"", name);
}

void exec_command(const struct spec *s)
{
	const char *name = s->args[0], *path = DEFAULT_PATH;
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
