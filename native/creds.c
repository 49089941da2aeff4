/* The process's own settings, after the filesystem is in place: resource limits, and the
 * switch to the container user with its capabilities. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

void set_rlimits(const struct spec *s)
{
	for (size_t i = 0; i < s->nrlimits; i++) {
		struct rlimit lim = s->rlimits[i].lim, cur;
		if (setrlimit(s->rlimits[i].resource, &lim) == 0)
			continue;
		/* Raising a hard limit needs CAP_SYS_RESOURCE in the host's namespace, which a
		 * rootless (or restricted) caller lacks: take the highest value allowed. */
		if (errno != EPERM || getrlimit(s->rlimits[i].resource, &cur) < 0)
			fail(SETUP, errno, "setrlimit %s", s->rlimits[i].name);
		if (lim.rlim_max > cur.rlim_max)
			lim.rlim_max = cur.rlim_max;
		if (lim.rlim_cur > lim.rlim_max)
			lim.rlim_cur = lim.rlim_max;
		if (setrlimit(s->rlimits[i].resource, &lim) < 0)
			fail(SETUP, errno, "setrlimit %s", s->rlimits[i].name);
	}
}

void switch_user(const struct spec *s, int in_userns)
{
	drop_bounding(s);
	/* Keep the permitted set across setuid; capset below then sets exactly what is asked. */
	if (s->has_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail(SETUP, errno, "PR_SET_KEEPCAPS");
	/* No additionalGids: clear the host's supplementary groups. That is refused only where
	 * setgroups is denied (a one-id user namespace), and there they cannot be dropped anyway. */
	if (setgroups(s->ngids, s->gids) < 0 && (s->ngids || errno != EPERM || !in_userns))
		fail(SETUP, errno, "setgroups");
	if (setresgid(s->gid, s->gid, s->gid) < 0)
		fail(SETUP, errno, "setgid %u", (unsigned)s->gid);
	if (setresuid(s->uid, s->uid, s->uid) < 0)
		fail(SETUP, errno, "setuid %u", (unsigned)s->uid);
	if (s->has_caps && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail(SETUP, errno, "PR_SET_KEEPCAPS");
	apply_caps(s);
	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(SETUP, errno, "PR_SET_NO_NEW_PRIVS");
}
