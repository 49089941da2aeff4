/* imgx-run's parts: the failure report, the config it reads, and the steps of setting up a
 * container (one file each; every step reports and exits on failure). */
#ifndef IMGX_RUN_H
#define IMGX_RUN_H
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* report.c: `KIND message` on the report fd, or `imgx-run: message` on stderr. */
enum report_kind { SETUP = 125, NOEXEC = 126, NOTFOUND = 127 };

void report_set_fd(int fd);
/* Closes this process's copy, so the reader sees EOF once every other copy is gone. */
void report_close(void);
/* Writes one line and exits with the kind's status. `err` (an errno, or 0) adds ": strerror". */
__attribute__((noreturn, format(printf, 3, 4)))
void fail(enum report_kind kind, int err, const char *fmt, ...);

/* spec.c: the subset of an OCI runtime config (config.json) that imgx-run supports. */
struct mount_spec {
	char *dest, *type, *source;
	unsigned long flags; /* MS_* from the options, propagation excluded */
	unsigned long propagation;
	char *data;          /* options mount(2) takes as data, comma-joined */
	int bind;
};

struct id_map { unsigned long container, host, size; };

struct device_spec {
	char *path;
	mode_t type, mode; /* type: S_IFCHR, S_IFBLK or S_IFIFO */
	unsigned major, minor;
	uid_t uid;
	gid_t gid;
};

struct rlimit_spec { int resource; struct rlimit lim; const char *name; };

enum capset_kind { CAP_BOUNDING, CAP_EFFECTIVE, CAP_INHERITABLE, CAP_PERMITTED, CAP_AMBIENT, CAP_SETS };

struct spec {
	char *root; /* absolute or relative to the cwd: already joined with the bundle */
	int root_readonly, terminal, no_new_privs;
	char *hostname, **args, **env, *cwd;
	uid_t uid;
	gid_t gid, *gids;
	mode_t umask;
	int has_caps; /* no process.capabilities: leave them as setuid leaves them */
	uint64_t caps[CAP_SETS];
	int clone_flags; /* CLONE_NEW* */
	/* Lists, each with its count. */
	struct rlimit_spec *rlimits;
	struct id_map *uid_maps, *gid_maps;
	struct mount_spec *mounts;
	struct device_spec *devices;
	char **masked, **readonly;
	size_t ngids, nrlimits, nuid_maps, ngid_maps, nmounts, ndevices, nmasked, nreadonly;
	char *ovl_lower, *ovl_upper, *ovl_work; /* all three, or none */
};

/* Reads BUNDLE/config.json; reports SETUP and exits on any error. */
void spec_load(struct spec *s, const char *bundle);
/* Capability number for "CAP_CHOWN" and friends, or -1. */
int cap_from_name(const char *name);

/* inroot.c: open a path inside an untrusted tree without leaving it. */
enum inroot_create { INROOT_NONE, INROOT_DIR, INROOT_FILE };
int inroot_open(int rootfd, const char *path, enum inroot_create create);
/* "/proc/self/fd/N": the name mount(2) gets for an fd opened by inroot_open. */
const char *fd_path(int fd, char buf[32]);

/* userns.c: runs in the outer process, once the child exists. */
void write_id_maps(const struct spec *s, pid_t child);

/* mounts.c: from the private mount tree to the pivoted root; returns an fd of the cwd. */
int setup_rootfs(const struct spec *s);

/* caps.c */
int cap_last(void);
void drop_bounding(const struct spec *s);
void apply_caps(const struct spec *s);

/* creds.c */
void set_rlimits(const struct spec *s);
void switch_user(const struct spec *s, int in_userns);

/* net.c */
void loopback_up(void);

/* exec.c */
__attribute__((noreturn)) void exec_command(const struct spec *s);

/* supervise.c: signal forwarding and waiting, for the outer process and for --init. */
void block_forwarded(sigset_t *old);
int supervise(pid_t child, int reap_all, const sigset_t *old);
void reset_signals(void);

#endif
