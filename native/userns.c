/* uid_map / gid_map of the child's user namespace, written by the outer process (a process
 * cannot map itself beyond its own id). One's own id alone can be written directly; other
 * ranges need the setuid helpers newuidmap/newgidmap and /etc/subuid, unless we are root. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void write_file(pid_t pid, const char *name, const char *text)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	/* The kernel takes a map in one write, or not at all. */
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail(SETUP, errno, "write %s \"%.*s\"", path, (int)strcspn(text, "\n"), text);
	close(fd);
}

/* "C H S" triples, separated by `sep`: the map file's format, or the helpers' arguments. */
static char *format(const struct id_map *maps, size_t n, char sep)
{
	char *text = calloc(n + 1, 3 * 11 + 3);
	for (size_t i = 0, len = 0; text && i < n; i++)
		len += (size_t)sprintf(text + len, "%lu %lu %lu%c", maps[i].container, maps[i].host, maps[i].size, sep);
	if (!text)
		fail(SETUP, ENOMEM, "id map");
	return text;
}

static void run_helper(const char *helper, pid_t pid, const struct id_map *maps, size_t n)
{
	char *args = format(maps, n, ' '), *cmd, **argv = calloc(3 * n + 3, sizeof *argv);
	size_t argc = 0;
	if (!argv || asprintf(&cmd, "%s %d %s", helper, (int)pid, args) < 0)
		fail(SETUP, ENOMEM, "%s", helper);
	cmd[strlen(cmd) - 1] = 0;
	char *words = strdup(cmd);
	for (char *w = strtok(words, " "); w; w = strtok(NULL, " "))
		argv[argc++] = w;
	argv[argc] = NULL;
	pid_t h;
	int st, err = posix_spawnp(&h, helper, NULL, NULL, argv, environ);
	if (err)
		fail(SETUP, err, "%s%s", cmd, err == ENOENT ? " (install the uidmap package to map more than your own id)" : "");
	while (waitpid(h, &st, 0) < 0)
		if (errno != EINTR)
			fail(SETUP, errno, "%s", cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail(SETUP, 0, "%s failed (exit status %d; are the ranges in /etc/sub%cid?)", cmd,
		     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), helper[3]);
}

void write_id_maps(const struct spec *s, pid_t child)
{
	uid_t euid = geteuid();
	int own_uid = s->nuid_maps == 1 && s->uid_maps[0].host == euid && s->uid_maps[0].size == 1;
	int own_gid = s->ngid_maps == 1 && s->gid_maps[0].host == getegid() && s->gid_maps[0].size == 1;
	/* gid first: without privilege, setgroups must be denied before gid_map is written,
	 * which needs no uid_map yet; with the helpers the order does not matter. */
	if (euid != 0 && own_gid)
		write_file(child, "setgroups", "deny");
	if (euid == 0 || own_gid)
		write_file(child, "gid_map", format(s->gid_maps, s->ngid_maps, '\n'));
	else
		run_helper("newgidmap", child, s->gid_maps, s->ngid_maps);
	if (euid == 0 || own_uid)
		write_file(child, "uid_map", format(s->uid_maps, s->nuid_maps, '\n'));
	else
		run_helper("newuidmap", child, s->uid_maps, s->nuid_maps);
}
