/* Waiting for the container process and passing signals on to it: the outer process does
 * it for pid 1 (which lives in a pid namespace the sender cannot see), --init for pid 2. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
#define NFORWARDED (int)(sizeof forwarded / sizeof *forwarded)

static volatile pid_t target;

static void forward(int sig)
{
	int saved = errno;
	if (target > 0)
		kill(target, sig);
	errno = saved;
}

/* Until the handlers are in place, a signal waits instead of killing us with the child unborn. */
void block_forwarded(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (int i = 0; i < NFORWARDED; i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* What the command gets: default dispositions and an empty mask, whatever we inherited. */
void reset_signals(void)
{
	sigset_t none;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Returns the child's exit status, or 128+N when signal N killed it. With reap_all (init),
 * every other process that ends up as our child is reaped on the way. */
int supervise(pid_t child, int reap_all, const sigset_t *old)
{
	struct sigaction sa = { .sa_handler = forward, .sa_flags = SA_RESTART };
	sigfillset(&sa.sa_mask);
	target = child;
	for (int i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, old, NULL);
	for (;;) {
		int st;
		pid_t p = waitpid(reap_all ? -1 : child, &st, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			fail(SETUP, errno, "wait for the container process");
		if (p == child && (WIFEXITED(st) || WIFSIGNALED(st))) {
			target = 0; /* its pid may be reused from now on */
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}
}
