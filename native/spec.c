/* Reads config.json into struct spec, checking types as it goes, so that the rest of the
 * program handles plain C values and every config mistake is reported before clone(). */
#define _GNU_SOURCE
#include "imgx-run.h"
#include "json.h"
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define MAX_CONFIG (16 << 20)
#define MAX_ID 4294967294.0 /* (uid_t)-1 means "no change" to the kernel */

__attribute__((noreturn)) static void bad(const char *field, const char *what)
{
	fail(SETUP, 0, "config.json: %s: %s", field, what);
}

static void *alloc(size_t n, size_t size)
{
	void *p = calloc(n + 1, size); /* +1: lists end with a zeroed entry */
	if (!p)
		fail(SETUP, ENOMEM, "config.json");
	return p;
}

static char *join(const char *a, const char *b)
{
	char *r = alloc(strlen(a) + strlen(b) + 1, 1);
	sprintf(r, "%s/%s", a, b);
	return r;
}

static char *str(const struct jv *v, const char *field, int required)
{
	if ((!v || v->type == J_NULL) && required)
		bad(field, "missing");
	if (v && v->type != J_NULL && v->type != J_STR)
		bad(field, "must be a string");
	return v && v->type == J_STR ? v->str : NULL;
}

/* The elements of an array (NULL when absent or null), checking that it is one. */
static struct jv *items(const struct jv *v, const char *field)
{
	if (v && v->type != J_ARR && v->type != J_NULL)
		bad(field, "must be an array");
	return v && v->type == J_ARR ? v->child : NULL;
}

/* A NULL-terminated array of strings (NULL when absent). */
static char **strs(const struct jv *v, const char *field, size_t *count)
{
	size_t n = 0;
	char **out = v && v->type == J_ARR ? alloc(json_count(v), sizeof *out) : NULL;
	for (struct jv *e = items(v, field); e; e = e->next)
		out[n++] = str(e, field, 1);
	if (count)
		*count = n;
	return out;
}

/* A non-negative integer up to max; `dflt` when absent (if dflt < 0: required). */
static double num(const struct jv *v, const char *field, double max, double dflt)
{
	if (!v && dflt >= 0)
		return dflt;
	if (!v || v->type != J_NUM)
		bad(field, "must be a number");
	if (v->num < 0 || v->num > max || v->num != (double)(unsigned long long)v->num)
		bad(field, "out of range");
	return v->num;
}
#define id(obj, key, field, dflt) (unsigned long)num(json_get(obj, key), field, MAX_ID, dflt)

static int boolean(const struct jv *v, const char *field)
{
	if (v && v->type != J_BOOL && v->type != J_NULL)
		bad(field, "must be true or false");
	return v && v->boolean;
}

/* Index of `name` in a NULL-terminated table of names, or -1. */
static int lookup(const char *const *names, const char *name)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

/* Mount options that are flags; `clear` ones remove theirs. Propagation ones get a call of their own. */
static const struct { const char *name; unsigned long flag; int clear, propagation; } opts_table[] = {
	{ "ro", MS_RDONLY, 0, 0 }, { "rw", MS_RDONLY, 1, 0 }, { "nosuid", MS_NOSUID, 0, 0 },
	{ "suid", MS_NOSUID, 1, 0 }, { "nodev", MS_NODEV, 0, 0 }, { "dev", MS_NODEV, 1, 0 },
	{ "noexec", MS_NOEXEC, 0, 0 }, { "exec", MS_NOEXEC, 1, 0 }, { "relatime", MS_RELATIME, 0, 0 },
	{ "norelatime", MS_RELATIME, 1, 0 }, { "strictatime", MS_STRICTATIME, 0, 0 },
	{ "noatime", MS_NOATIME, 0, 0 }, { "nodiratime", MS_NODIRATIME, 0, 0 }, { "bind", MS_BIND, 0, 0 },
	{ "rbind", MS_BIND | MS_REC, 0, 0 }, { "private", MS_PRIVATE, 0, 1 }, { "rprivate", MS_PRIVATE | MS_REC, 0, 1 },
	{ "slave", MS_SLAVE, 0, 1 }, { "rslave", MS_SLAVE | MS_REC, 0, 1 }, { "shared", MS_SHARED, 0, 1 },
	{ "rshared", MS_SHARED | MS_REC, 0, 1 }, { NULL, 0, 0, 0 },
};

static void load_mount(struct mount_spec *m, const struct jv *v, const char *bundle)
{
	size_t nopts, len = 0, total = 1;
	char **opts = strs(json_get(v, "options"), "mounts[].options", &nopts);
	for (size_t i = 0; i < nopts; i++)
		total += strlen(opts[i]) + 1;
	m->dest = str(json_get(v, "destination"), "mounts[].destination", 1);
	if (m->dest[0] != '/')
		bad("mounts[].destination", "must be absolute");
	m->type = str(json_get(v, "type"), "mounts[].type", 0);
	m->source = str(json_get(v, "source"), "mounts[].source", 0);
	m->data = alloc(total, 1);
	for (size_t i = 0; i < nopts; i++) {
		int k = 0;
		while (opts_table[k].name && strcmp(opts_table[k].name, opts[i]) != 0)
			k++;
		if (!opts_table[k].name) /* mode=, size=, newinstance …: mount(2) data */
			len += (size_t)sprintf(m->data + len, "%s%s", len ? "," : "", opts[i]);
		else if (opts_table[k].propagation)
			m->propagation = opts_table[k].flag;
		else if (opts_table[k].clear)
			m->flags &= ~opts_table[k].flag;
		else
			m->flags |= opts_table[k].flag;
	}
	m->bind = (m->flags & MS_BIND) || (m->type && strcmp(m->type, "bind") == 0);
	if (m->bind) {
		m->flags |= MS_BIND;
		if (!m->source)
			bad("mounts[].source", "a bind mount needs a source");
		if (m->source[0] != '/') /* the runtime spec: relative to the bundle */
			m->source = join(bundle, m->source);
	}
}

static void load_maps(const struct jv *v, const char *field, struct id_map **out, size_t *n)
{
	*out = alloc(json_count(v), sizeof **out);
	for (struct jv *e = items(v, field); e; e = e->next, (*n)++) {
		struct id_map *m = &(*out)[*n];
		m->container = id(e, "containerID", field, MAX_ID + 1);
		m->host = id(e, "hostID", field, MAX_ID + 1);
		m->size = id(e, "size", field, 0);
		if (m->container > MAX_ID || m->host > MAX_ID || !m->size)
			bad(field, "each entry needs containerID, hostID and a non-zero size");
	}
	if (!*n)
		bad(field, "a user namespace needs uidMappings and gidMappings");
}

static void load_namespaces(struct spec *s, const struct jv *v)
{
	static const char *const names[] = { "pid", "mount", "uts", "ipc", "network", "user", "cgroup", NULL };
	static const int flags[] = { CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER, 0 };
	/* Always a mount namespace: every mount must vanish with the container, never touch the host. */
	s->clone_flags = CLONE_NEWNS;
	for (struct jv *e = items(v, "linux.namespaces"); e; e = e->next) {
		const char *type = str(json_get(e, "type"), "linux.namespaces[].type", 1);
		int k = lookup(names, type);
		if (k < 0)
			fail(SETUP, 0, "config.json: linux.namespaces: unsupported namespace type \"%s\"", type);
		if (str(json_get(e, "path"), "linux.namespaces[].path", 0))
			fail(SETUP, 0, "config.json: linux.namespaces: joining namespaces is not supported (%s)", type);
		s->clone_flags |= flags[k];
	}
}

static void load_devices(struct spec *s, const struct jv *v)
{
	s->devices = alloc(json_count(v), sizeof *s->devices);
	for (struct jv *e = items(v, "linux.devices"); e; e = e->next) {
		struct device_spec *d = &s->devices[s->ndevices++];
		d->path = str(json_get(e, "path"), "linux.devices[].path", 1);
		if (d->path[0] != '/')
			bad("linux.devices[].path", "must be absolute");
		const char *t = str(json_get(e, "type"), "linux.devices[].type", 1);
		d->type = strchr("cu", t[0]) ? S_IFCHR : t[0] == 'b' ? S_IFBLK : t[0] == 'p' ? S_IFIFO : 0;
		if (!d->type || !t[0] || t[1])
			bad("linux.devices[].type", "must be c, u, b or p");
		d->major = (unsigned)id(e, "major", "linux.devices[].major", 0);
		d->minor = (unsigned)id(e, "minor", "linux.devices[].minor", 0);
		d->mode = (mode_t)id(e, "fileMode", "linux.devices[].fileMode", 0666) & 07777;
		d->uid = (uid_t)id(e, "uid", "linux.devices[].uid", 0);
		d->gid = (gid_t)id(e, "gid", "linux.devices[].gid", 0);
	}
}

static void load_rlimits(struct spec *s, const struct jv *v)
{
	/* In the order of the RLIMIT_* numbers (asm-generic/resource.h; not mips, sparc, alpha). */
	_Static_assert(RLIMIT_NOFILE == 7 && RLIMIT_RTTIME == 15, "generic RLIMIT_* numbers");
	static const char *const names[] = {
		"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
		"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
		"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", NULL,
	};
	s->rlimits = alloc(json_count(v), sizeof *s->rlimits);
	for (struct jv *e = items(v, "process.rlimits"); e; e = e->next) {
		struct rlimit_spec *r = &s->rlimits[s->nrlimits++];
		r->name = str(json_get(e, "type"), "process.rlimits[].type", 1);
		if ((r->resource = lookup(names, r->name)) < 0)
			fail(SETUP, 0, "config.json: process.rlimits: unknown type \"%s\"", r->name);
		/* RLIM_INFINITY (2^64-1) is not exact as a double: anything that large means it. */
		double hard = num(json_get(e, "hard"), "process.rlimits[].hard", 1.9e19, -1);
		double soft = num(json_get(e, "soft"), "process.rlimits[].soft", 1.9e19, -1);
		r->lim.rlim_max = hard >= 1.8e19 ? RLIM_INFINITY : (rlim_t)hard;
		r->lim.rlim_cur = soft >= 1.8e19 ? RLIM_INFINITY : (rlim_t)soft;
	}
}

static void load_caps(struct spec *s, const struct jv *v)
{
	static const char *sets[CAP_SETS] = { "bounding", "effective", "inheritable", "permitted", "ambient" };
	if (!v || v->type == J_NULL)
		return;
	if (v->type != J_OBJ)
		bad("process.capabilities", "must be an object");
	s->has_caps = 1;
	for (int i = 0; i < CAP_SETS; i++)
		for (char **n = strs(json_get(v, sets[i]), "process.capabilities", NULL); n && *n; n++) {
			if (cap_from_name(*n) < 0)
				fail(SETUP, 0, "config.json: process.capabilities.%s: unknown capability \"%s\"", sets[i], *n);
			s->caps[i] |= 1ULL << cap_from_name(*n);
		}
}

static void load_process(struct spec *s, const struct jv *proc)
{
	if (!proc || proc->type != J_OBJ)
		bad("process", "missing");
	s->args = strs(json_get(proc, "args"), "process.args", NULL);
	if (!s->args || !s->args[0] || !s->args[0][0])
		bad("process.args", "must be a non-empty array of strings");
	s->env = strs(json_get(proc, "env"), "process.env", NULL);
	s->env = s->env ? s->env : alloc(0, sizeof *s->env);
	s->cwd = str(json_get(proc, "cwd"), "process.cwd", 0);
	s->cwd = s->cwd && s->cwd[0] ? s->cwd : "/";
	if (s->cwd[0] != '/')
		bad("process.cwd", "must be absolute");
	const struct jv *user = json_get(proc, "user");
	s->uid = (uid_t)id(user, "uid", "process.user.uid", 0);
	s->gid = (gid_t)id(user, "gid", "process.user.gid", 0);
	s->umask = (mode_t)id(user, "umask", "process.user.umask", 022) & 0777;
	const struct jv *gids = json_get(user, "additionalGids");
	s->gids = alloc(json_count(gids), sizeof *s->gids);
	for (struct jv *g = items(gids, "process.user.additionalGids"); g; g = g->next)
		s->gids[s->ngids++] = (gid_t)num(g, "process.user.additionalGids", MAX_ID, -1);
	s->terminal = boolean(json_get(proc, "terminal"), "process.terminal");
	s->no_new_privs = boolean(json_get(proc, "noNewPrivileges"), "process.noNewPrivileges");
	load_caps(s, json_get(proc, "capabilities"));
	load_rlimits(s, json_get(proc, "rlimits"));
}

static char *read_config(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = malloc(MAX_CONFIG + 1);
	size_t len = f && buf ? fread(buf, 1, MAX_CONFIG + 1, f) : 0;
	if (!f || !buf || ferror(f) || len > MAX_CONFIG)
		fail(SETUP, !f ? errno : !buf ? ENOMEM : len > MAX_CONFIG ? EFBIG : EIO, "read %s", path);
	fclose(f);
	buf[len] = 0;
	return buf;
}

void spec_load(struct spec *s, const char *bundle)
{
	char *path = join(bundle, "config.json"), err[200];
	char *text = read_config(path);
	struct jv *cfg = json_parse(text, strlen(text), err, sizeof err);
	if (!cfg || cfg->type != J_OBJ)
		fail(SETUP, 0, "%s: %s", path, cfg ? "not a JSON object" : err);
	memset(s, 0, sizeof *s);

	const struct jv *root = json_get(cfg, "root");
	s->root = str(json_get(root, "path"), "root.path", 1);
	s->root = s->root[0] == '/' ? s->root : join(bundle, s->root);
	s->root_readonly = boolean(json_get(root, "readonly"), "root.readonly");
	s->hostname = str(json_get(cfg, "hostname"), "hostname", 0);
	load_process(s, json_get(cfg, "process"));

	const struct jv *lx = json_get(cfg, "linux");
	load_namespaces(s, json_get(lx, "namespaces"));
	if (s->clone_flags & CLONE_NEWUSER) {
		load_maps(json_get(lx, "uidMappings"), "linux.uidMappings", &s->uid_maps, &s->nuid_maps);
		load_maps(json_get(lx, "gidMappings"), "linux.gidMappings", &s->gid_maps, &s->ngid_maps);
	}
	load_devices(s, json_get(lx, "devices"));
	s->masked = strs(json_get(lx, "maskedPaths"), "linux.maskedPaths", &s->nmasked);
	s->readonly = strs(json_get(lx, "readonlyPaths"), "linux.readonlyPaths", &s->nreadonly);

	const struct jv *mounts = json_get(cfg, "mounts");
	s->mounts = alloc(json_count(mounts), sizeof *s->mounts);
	for (struct jv *m = items(mounts, "mounts"); m; m = m->next)
		load_mount(&s->mounts[s->nmounts++], m, bundle);

	const struct jv *ann = json_get(cfg, "annotations");
	s->ovl_lower = str(json_get(ann, "dev.imgx.overlay.lowerdir"), "annotations", 0);
	s->ovl_upper = str(json_get(ann, "dev.imgx.overlay.upperdir"), "annotations", 0);
	s->ovl_work = str(json_get(ann, "dev.imgx.overlay.workdir"), "annotations", 0);
	if (!s->ovl_lower || !s->ovl_upper || !s->ovl_work)
		s->ovl_lower = s->ovl_upper = s->ovl_work = NULL;
}
