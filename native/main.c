/* imgx-run: runs one OCI bundle in new namespaces. Node cannot do this itself: a
 * multithreaded process may not unshare a user namespace, hence this small executable.
 *
 *   imgx-run [--init] [--report-fd N] BUNDLE_DIR
 *
 * The outer process (the one Node spawned) clones the child into the namespaces, writes its
 * id maps, lets it go, and then only forwards signals and waits. The child (pid 1) builds
 * the filesystem, drops privileges and execs the command, or with --init forks it as pid 2. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static sigset_t saved_mask;

__attribute__((noreturn)) static void usage(const char *why)
{
	fprintf(stderr, "imgx-run: %s\nusage: imgx-run [--init] [--report-fd N] BUNDLE_DIR\n", why);
	exit(SETUP);
}

/* The outer process holds the write end of the sync pipe until it exits: a hang-up on our
 * read end means it is gone. */
static int parent_gone(int sync_fd)
{
	struct pollfd p = { sync_fd, POLLIN, 0 };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

/* Gives the command the terminal's foreground, so that ^C, ^Z and reads reach it. No pty, and
 * no session of its own: taking the tty over (setsid + TIOCSCTTY) would leave the caller's
 * session, the user's shell, without a controlling terminal once the container is gone. */
static void take_foreground(void)
{
	setpgid(0, 0);
	signal(SIGTTOU, SIG_IGN); /* a background group asking for the foreground */
	if (tcsetpgrp(0, getpgrp()) < 0)
		fail(SETUP, errno, "make the command the terminal's foreground");
}

__attribute__((noreturn)) static void run_init(const struct spec *s)
{
	sigset_t old;
	block_forwarded(&old);
	pid_t pid = fork();
	if (pid < 0)
		fail(SETUP, errno, "fork the command");
	if (pid == 0) {
		if (s->terminal)
			take_foreground();
		reset_signals();
		exec_command(s);
	}
	report_close(); /* the command's copy closes when it execs */
	_exit(supervise(pid, 1, &old));
}

__attribute__((noreturn)) static void child(const struct spec *s, int sync_fd, int init)
{
	char go;
	ssize_t n;
	sigprocmask(SIG_SETMASK, &saved_mask, NULL); /* ours were blocked only for the outer process */
	/* If the outer process dies, so do we (and with pid 1, the whole namespace). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(SETUP, errno, "PR_SET_PDEATHSIG");
	/* Wait for the id maps; EOF means the outer process died before (the prctl race). */
	while ((n = read(sync_fd, &go, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(SETUP);
	umask(0); /* modes of mount points and devices exactly as given */
	int cwd = setup_rootfs(s);
	if ((s->clone_flags & CLONE_NEWUTS) && s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
		fail(SETUP, errno, "sethostname %s", s->hostname);
	if (s->clone_flags & CLONE_NEWNET)
		loopback_up();
	set_rlimits(s);
	umask(s->umask);
	switch_user(s, !!(s->clone_flags & CLONE_NEWUSER));
	/* A change of credentials clears the parent-death signal: set it again, then check
	 * that the outer process did not die in between. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(SETUP, errno, "PR_SET_PDEATHSIG");
	if (parent_gone(sync_fd))
		_exit(SETUP);
	if (fchdir(cwd) < 0)
		fail(SETUP, errno, "chdir %s", s->cwd);
	close(cwd);
	if (init)
		run_init(s);
	if (s->terminal)
		take_foreground();
	reset_signals();
	exec_command(s);
}

int main(int argc, char **argv)
{
	int init = 0, rfd = -1;
	const char *bundle = NULL;
	for (int i = 1; i < argc; i++) {
		char *end = NULL;
		if (strcmp(argv[i], "--init") == 0)
			init = 1;
		else if (strcmp(argv[i], "--report-fd") == 0 && i + 1 < argc)
			rfd = (int)strtol(argv[++i], &end, 10);
		else if (argv[i][0] == '-' || bundle)
			usage(bundle ? "one bundle directory only" : "unknown option");
		else
			bundle = argv[i];
		/* The container process's copy must close when it execs: that EOF is the signal. */
		if (end && (*end || end == argv[i] || rfd < 3 || fcntl(rfd, F_SETFD, FD_CLOEXEC) < 0))
			usage("--report-fd: not an open file descriptor above 2");
	}
	if (!bundle)
		usage("no bundle directory");
	report_set_fd(rfd);
	signal(SIGPIPE, SIG_IGN); /* a reader that went away must not turn a report into a crash */
	signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would make waitpid fail */

	struct spec s;
	spec_load(&s, bundle);
	/* Only a terminal whose foreground we hold can be handed on (not when run with &). */
	s.terminal = s.terminal && isatty(0) && tcgetpgrp(0) == getpgrp();
	cap_last(); /* read now: /proc will be the container's later */
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0)
		fail(SETUP, errno, "pipe");
	block_forwarded(&saved_mask);
	/* Raw clone without a stack behaves like fork: the child runs on a copy of ours. With
	 * CLONE_NEWUSER in the same call, the other namespaces belong to the new user namespace. */
	pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)s.clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) /* EPERM: not root, and no user namespace asked for */
		fail(SETUP, errno, "create namespaces");
	if (pid == 0) {
		close(sync[1]);
		child(&s, sync[0], init);
	}
	close(sync[0]);
	if (s.clone_flags & CLONE_NEWUSER)
		write_id_maps(&s, pid);
	ssize_t gone = write(sync[1], "g", 1); /* fails if the child died: its status says why */
	(void)gone;
	report_close();
	int status = supervise(pid, 0, &saved_mask);
	if (s.terminal) { /* take the foreground back for our caller */
		signal(SIGTTOU, SIG_IGN);
		tcsetpgrp(0, getpgrp());
	}
	return status;
}
