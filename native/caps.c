/* Capabilities by name, and the three kernel interfaces for them: the bounding set
 * (prctl), the effective/permitted/inheritable sets (capset v3) and the ambient set. */
#define _GNU_SOURCE
#include "imgx-run.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *names[] = {
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};

int cap_from_name(const char *name)
{
	if (strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
		if (strcasecmp(name, names[i]) == 0)
			return i;
	return -1;
}

/* The highest capability this kernel knows; names beyond it are skipped, as runc does. */
int cap_last(void)
{
	static int last = -1;
	char buf[16] = "";
	int fd = last < 0 ? open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC) : -1;
	if (fd >= 0 && read(fd, buf, sizeof buf - 1) > 0)
		last = atoi(buf);
	if (fd >= 0)
		close(fd);
	return last > 0 ? last : (last = CAP_LAST_CAP);
}

/* While still root with every capability: dropping needs CAP_SETPCAP. */
void drop_bounding(const struct spec *s)
{
	if (!s->has_caps)
		return;
	for (int c = 0; c <= cap_last(); c++)
		if (!(s->caps[CAP_BOUNDING] >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			fail(SETUP, errno, "drop CAP_%s from the bounding set", c < 41 ? names[c] : "?");
}

void apply_caps(const struct spec *s)
{
	if (!s->has_caps)
		return;
	uint64_t mask = cap_last() >= 63 ? ~0ULL : (1ULL << (cap_last() + 1)) - 1;
	uint64_t eff = s->caps[CAP_EFFECTIVE] & mask, prm = s->caps[CAP_PERMITTED] & mask;
	uint64_t inh = s->caps[CAP_INHERITABLE] & mask;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail(SETUP, errno, "capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail(SETUP, errno, "clear the ambient capabilities");
	for (int c = 0; c <= cap_last(); c++)
		if ((s->caps[CAP_AMBIENT] >> c & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			fail(SETUP, errno, "raise ambient CAP_%s (it must be permitted and inheritable)", names[c]);
}
