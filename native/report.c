/* Failure reporting. Node reads the report fd to tell a setup failure from the command's own
 * exit status 125-127, so a report is exactly one line written with one write(). */
#include "imgx-run.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int rfd = -1;

void report_set_fd(int fd) { rfd = fd; }

void report_close(void)
{
	if (rfd >= 0)
		close(rfd);
	rfd = -1;
}

void fail(enum report_kind kind, int err, const char *fmt, ...)
{
	static const char *names[] = { "SETUP", "NOEXEC", "NOTFOUND" };
	char msg[1024], line[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* Paths come from the config: keep the report on one line whatever they hold. */
	for (char *c = msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	const char *suffix = err ? strerror(err) : "";
	int n = rfd >= 0
		? snprintf(line, sizeof line, "%s %s%s%s\n", names[kind - SETUP], msg, err ? ": " : "", suffix)
		: snprintf(line, sizeof line, "imgx-run: %s%s%s\n", msg, err ? ": " : "", suffix);
	if (n > (int)sizeof line - 1) {
		n = (int)sizeof line - 1;
		line[n - 1] = '\n';
	}
	while (write(rfd >= 0 ? rfd : 2, line, (size_t)n) < 0 && errno == EINTR)
		;
	/* _exit: a child made by clone/fork must not flush stdio buffers it shares with its parent. */
	_exit(kind);
}
