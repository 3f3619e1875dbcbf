/* Plugin loader: only regular, non-writable-by-others files from one
 * directory; RTLD_NOW|RTLD_LOCAL; the ABI major is checked before any other
 * call; one unwind path that dlcloses. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "util.h"

#ifndef RDHPF_PLUGIN_DIR_DEFAULT
#define RDHPF_PLUGIN_DIR_DEFAULT "/usr/local/lib/rdhpf"
#endif

/* Sizes of the 2.0 structs: a 2.x plugin's tables are at least this big. */
#define INFO_V2_0_SIZE (offsetof(struct rdhpf_plugin_info, ops) + sizeof(void *))
#define TOPS_V2_0_SIZE (offsetof(struct rdhpf_transport_ops, forward_stats) + sizeof(void *))
#define ROPS_V2_0_SIZE (offsetof(struct rdhpf_runtime_ops, stop) + sizeof(void *))

const char *
plugin_kind_name(int kind)
{
	switch (kind) {
	case RDHPF_KIND_TRANSPORT:
		return "transport";
	case RDHPF_KIND_RUNTIME:
		return "runtime";
	default:
		return "unknown";
	}
}

static int
name_ok(const char *n)
{
	size_t len = 0;

	if (n == NULL || *n == '\0')
		return 0;
	for (const char *p = n; *p; p++, len++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	}
	return len <= 32;
}

#define NEED(o, slot)                                                                              \
	do {                                                                                       \
		if (RDHPF_SLOT(o, slot) == NULL) {                                                 \
			snprintf(why, len, "mandatory slot %s is NULL", #slot);                    \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

#define NEED_CAP(o, slot, capname)                                                                 \
	do {                                                                                       \
		if (RDHPF_SLOT(o, slot) == NULL) {                                                 \
			snprintf(why, len, "claims %s but %s is NULL", capname, #slot);            \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

static int
options_ok(const struct rdhpf_plugin_info *info, char *why, size_t len)
{
	if (info->options == NULL)
		return 0;
	for (size_t i = 0; info->options[i] != NULL; i++) {
		const struct rdhpf_option_desc *d = info->options[i];
		const char *n = RDHPF_HAS(d, name) ? d->name : NULL;
		if (n == NULL || *n == '\0' ||
		    strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(n)) {
			snprintf(why, len, "option %zu has a bad name (want [a-z0-9_]+)", i + 1);
			return -1;
		}
		if (i >= 256) {
			snprintf(why, len, "more than 256 options (is the table ended by NULL?)");
			return -1;
		}
	}
	return 0;
}

int
plugin_check_info(const struct rdhpf_plugin_info *info, char *why, size_t len)
{
	if (info == NULL) {
		snprintf(why, len, "entry %s returned no info block", RDHPF_PLUGIN_ENTRY);
		return -1;
	}
	if (info->abi_major != RDHPF_ABI_MAJOR) {
		snprintf(why, len, "built for plugin ABI %u.%u; this rdhpf speaks %u.%u",
		         info->abi_major, info->abi_minor, RDHPF_ABI_MAJOR, RDHPF_ABI_MINOR);
		return -1;
	}
	if (info->struct_size < INFO_V2_0_SIZE) {
		snprintf(why, len, "info block is %u bytes, ABI %u.0 needs at least %zu",
		         info->struct_size, RDHPF_ABI_MAJOR, (size_t)INFO_V2_0_SIZE);
		return -1;
	}
	if (!name_ok(info->name)) {
		snprintf(why, len, "bad plugin name (want [a-z0-9-], at most 32)");
		return -1;
	}
	if (info->version == NULL) {
		snprintf(why, len, "no version string");
		return -1;
	}
	if (options_ok(info, why, len) != 0)
		return -1;
	if (info->kind == RDHPF_KIND_TRANSPORT) {
		const struct rdhpf_transport_ops *o = info->ops.transport;
		if (o == NULL) {
			snprintf(why, len, "no transport ops table");
			return -1;
		}
		if (o->struct_size < TOPS_V2_0_SIZE) {
			snprintf(why, len,
			         "transport ops table is %u bytes, ABI %u.0 needs at least %zu",
			         o->struct_size, RDHPF_ABI_MAJOR, (size_t)TOPS_V2_0_SIZE);
			return -1;
		}
		NEED(o, create);
		NEED(o, destroy);
		NEED(o, connect);
		NEED(o, disconnect);
		NEED(o, health_check);
		NEED(o, forward_add);
		NEED(o, forward_remove);
		if (info->caps & RDHPF_TCAP_EXEC)
			NEED_CAP(o, exec, "exec");
		if (info->caps & (RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM)) {
			const char *cap = (info->caps & RDHPF_TCAP_EXEC) ? "exec" : "unix-stream";
			NEED_CAP(o, stream_write, cap);
			NEED_CAP(o, stream_close, cap);
		}
		if (info->caps & RDHPF_TCAP_UNIX_STREAM)
			NEED_CAP(o, open_unix, "unix-stream");
		if (info->caps & RDHPF_TCAP_FORWARD_STATS)
			NEED_CAP(o, forward_stats, "forward-stats");
	} else if (info->kind == RDHPF_KIND_RUNTIME) {
		const struct rdhpf_runtime_ops *o = info->ops.runtime;
		if (o == NULL) {
			snprintf(why, len, "no runtime ops table");
			return -1;
		}
		if (o->struct_size < ROPS_V2_0_SIZE) {
			snprintf(why, len,
			         "runtime ops table is %u bytes, ABI %u.0 needs at least %zu",
			         o->struct_size, RDHPF_ABI_MAJOR, (size_t)ROPS_V2_0_SIZE);
			return -1;
		}
		NEED(o, create);
		NEED(o, destroy);
		NEED(o, list);
		NEED(o, stop);
		/* Without RDHPF_RCAP_EVENTS a watch slot is ignored: the
		 * runtime is polled. */
		if (info->caps & RDHPF_RCAP_EVENTS)
			NEED_CAP(o, watch, "events");
	} else {
		snprintf(why, len, "unknown plugin kind %d", info->kind);
		return -1;
	}
	return 0;
}

const char *
plugin_dir_choose(const struct cfg *c)
{
	const char *env;

	if (c != NULL && c->plugin_dir != NULL)
		return c->plugin_dir;
	env = getenv("RDHPF_PLUGIN_DIR");
	if (env != NULL && *env != '\0')
		return env;
	return RDHPF_PLUGIN_DIR_DEFAULT;
}

static void
refuse(struct plugin_set *set, const char *path, const char *why, int held_fd,
       const struct stat *st)
{
	struct refused *r;

	set->refused = xrealloc(set->refused, (set->n_refused + 1) * sizeof *set->refused);
	r = &set->refused[set->n_refused++];
	memset(r, 0, sizeof *r);
	r->path = xstrdup(path);
	r->why = xstrdup(why);
	r->held_fd = held_fd;
	if (held_fd >= 0) {
		r->dev = st->st_dev;
		r->ino = st->st_ino;
		r->ctim = st->st_ctim;
	}
}

/* Is the file a refusal after dlopen held still the file at its path, as
 * it was then (same inode, and its ctime, which moves with every write,
 * chmod or chown, unchanged)?  Loading it again could only be refused
 * again, for one more held fd. */
static bool
held_unchanged(const struct refused *r)
{
	struct stat b;

	return r->held_fd >= 0 && stat(r->path, &b) == 0 && r->dev == b.st_dev &&
	       r->ino == b.st_ino && r->ctim.tv_sec == b.st_ctim.tv_sec &&
	       r->ctim.tv_nsec == b.st_ctim.tv_nsec;
}

static int
owner_ok(const struct stat *st)
{
	return st->st_uid == 0 || st->st_uid == geteuid();
}

/* dlopen the very file that was checked through its descriptor, so that a
 * path swapped between the check and the load cannot put someone else's
 * constructors inside rdhpf.  Where /proc is absent the path is opened
 * again: the directory chain up to / was found writable only by root and us
 * (dir_chain_ok), so no one else can swap it, and the inode is compared
 * after the load as a last line.  The caller keeps fd open while the
 * plugin stays loaded: the dynamic loader knows a library by the name it was
 * opened with, and would hand back this one for the next file that got the
 * same descriptor number. */
static void *
dlopen_checked(int fd, const struct stat *st, const char *path, char *why, size_t len)
{
	char via[64];
	struct stat pst;
	void *dl;
	const char *e;
	int by_fd;

	snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
	by_fd = stat(via, &pst) == 0 && pst.st_dev == st->st_dev && pst.st_ino == st->st_ino;
	dl = dlopen(by_fd ? via : path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		e = dlerror();
		snprintf(why, len, "dlopen failed: %s", e ? e : "unknown error");
		return NULL;
	}
	if (!by_fd &&
	    (stat(path, &pst) != 0 || pst.st_dev != st->st_dev || pst.st_ino != st->st_ino)) {
		snprintf(why, len, "file changed while loading; refusing it");
		dlclose(dl);
		return NULL;
	}
	return dl;
}

/* Load one file of the directory open as dirfd; 0 on success, else -1 with
 * why. */
static int
load_one(struct plugin_set *set, int dirfd, const char *name, const char *path,
         const struct rdhpf_host_api *api, char *why, size_t len, int *held, struct stat *held_st)
{
	struct stat st;
	int fd = -1;
	void *dl = NULL;
	rdhpf_plugin_init_fn init;
	const struct rdhpf_plugin_info *info;

	/* O_NONBLOCK: a FIFO named *.so must not hang the loader. */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, len, errno == ELOOP ? "is a symbolic link" : "cannot open: %s",
		         strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(why, len, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "not a regular file");
		goto fail;
	}
	if (st.st_mode & (S_IWOTH | S_IWGRP)) {
		snprintf(why, len, "is %s-writable (mode %04o); refusing to load it",
		         (st.st_mode & S_IWOTH) ? "world" : "group",
		         (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (!owner_ok(&st)) {
		snprintf(why, len, "owned by uid %u, neither root nor us", (unsigned)st.st_uid);
		goto fail;
	}
	dl = dlopen_checked(fd, &st, path, why, len);
	if (dl == NULL)
		goto fail;
	init = (rdhpf_plugin_init_fn)(uintptr_t)dlsym(dl, RDHPF_PLUGIN_ENTRY);
	if (init == NULL) {
		snprintf(why, len, "no %s symbol: not an rdhpf plugin", RDHPF_PLUGIN_ENTRY);
		goto fail;
	}
	info = init(api);
	if (plugin_check_info(info, why, len) != 0)
		goto fail;
	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i]->info->kind == info->kind &&
		    strcmp(set->v[i]->info->name, info->name) == 0) {
			snprintf(why, len, "%s plugin '%s' already loaded from %s",
			         plugin_kind_name(info->kind), info->name, set->v[i]->path);
			goto fail;
		}
	}
	/* Hosts hold pointers to their plugins: each stays where it is when
	 * a reload loads more. */
	set->v = xrealloc(set->v, (set->n + 1) * sizeof *set->v);
	set->v[set->n] = xcalloc(1, sizeof **set->v);
	set->v[set->n]->path = xstrdup(path);
	set->v[set->n]->dl = dl;
	set->v[set->n]->fd = fd;
	set->v[set->n]->info = info;
	set->n++;
	return 0;
fail:
	if (dl != NULL) {
		dlclose(dl);
		/* dlclose need not unload (a library with unique symbols stays),
		 * and one that stays is known by /proc/self/fd/N: that number
		 * must not name another file in this load. */
		set->held_fds =
		    xrealloc(set->held_fds, (set->n_held_fds + 1) * sizeof *set->held_fds);
		set->held_fds[set->n_held_fds++] = fd;
		*held = fd;
		*held_st = st;
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
dir_check(const char *p, int final, char *why, size_t len)
{
	struct stat st;

	if (lstat(p, &st) != 0) {
		snprintf(why, len, "%s: %s", p, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, len, "%s: not a directory", p);
		return -1;
	}
	if (!owner_ok(&st)) {
		snprintf(why, len, "%s%s is owned by uid %u, neither root nor us",
		         final ? "" : "parent ", p, (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (final || !(st.st_mode & S_ISVTX))) {
		snprintf(why, len, "%s%s is %s-writable (mode %04o); refusing it",
		         final ? "" : "parent ", p, (st.st_mode & S_IWOTH) ? "world" : "group",
		         (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Whoever may write to a directory on the way from / to the plugins can
 * swap what lies below it, so every one must be owned by root or us and
 * writable by no one else (OpenSSH holds its configs to the same).  Above
 * the plugin directory a sticky directory such as /tmp passes: in it only
 * an entry's owner may rename that entry, and the next component is checked
 * in turn.  real is absolute and free of symlinks (realpath). */
static int
dir_chain_ok(const char *real, char *why, size_t len)
{
	char sub[PATH_MAX];
	size_t n = strlen(real);

	if (real[0] != '/' || n >= sizeof sub) {
		snprintf(why, len, "%s: not an absolute path", real);
		return -1;
	}
	if (dir_check("/", n == 1, why, len) != 0)
		return -1;
	for (size_t i = 2; i <= n; i++) {
		if (i < n && real[i] != '/')
			continue;
		memcpy(sub, real, i);
		sub[i] = '\0';
		if (dir_check(sub, i == n, why, len) != 0)
			return -1;
	}
	return 0;
}

static void
set_dir_error(struct plugin_set *set, const char *dir, const char *why)
{
	char buf[4600];

	snprintf(buf, sizeof buf, "plugin directory %s: %s", dir, why);
	free(set->dir_error); /* a reload's try replaces the last */
	set->dir_error = xstrdup(buf);
}

/* Is the file at path already in the set, loaded or refused? */
static bool
seen(const struct plugin_set *set, const char *path)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i]->path, path) == 0)
			return true;
	for (size_t i = 0; i < set->n_refused; i++)
		if (strcmp(set->refused[i].path, path) == 0)
			return true;
	return false;
}

/* Load the files of set->dir that want() accepts (every *.so when want is
 * NULL) and that the set has not seen yet, in name order. */
static int
load_files(struct plugin_set *set, const struct rdhpf_host_api *api,
           bool (*want)(const char *file, const void *arg), const void *arg)
{
	const char *dir = set->dir;
	struct stat st, cst;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	char real[PATH_MAX], why[4200];
	int dirfd, lfd;

	if (realpath(dir, real) == NULL) {
		set_dir_error(set, dir, strerror(errno));
		return -1;
	}
	if (dir_chain_ok(real, why, sizeof why) != 0) {
		set_dir_error(set, dir, why);
		return -1;
	}
	/* Read the directory that was checked, not whatever the path names
	 * later. */
	dirfd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0 || fstat(dirfd, &st) != 0 || lstat(real, &cst) != 0 ||
	    st.st_dev != cst.st_dev || st.st_ino != cst.st_ino) {
		set_dir_error(set, dir,
		              dirfd < 0 ? strerror(errno) : "changed while being checked");
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	lfd = dup(dirfd);
	d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (d == NULL) {
		set_dir_error(set, dir, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		close(dirfd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 4 || strcmp(e->d_name + l - 3, ".so") != 0 || e->d_name[0] == '.')
			continue;
		if (want != NULL && !want(e->d_name, arg))
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[4096], fwhy[512];
		int held = -1;
		struct stat hst = {0};
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (!seen(set, path) &&
		    load_one(set, dirfd, names[i], path, api, fwhy, sizeof fwhy, &held, &hst) != 0)
			refuse(set, path, fwhy, held, &hst);
		free(names[i]);
	}
	free(names);
	close(dirfd);
	return 0;
}

int
plugins_load_dir(const char *dir, const struct rdhpf_host_api *api, struct plugin_set *set)
{
	memset(set, 0, sizeof *set);
	set->dir = xstrdup(dir);
	return load_files(set, api, NULL, NULL);
}

struct wants {
	const struct plugin_want *w;
	size_t n;
};

/* "transport-openssh.so" for {transport, openssh}. */
static bool
file_wanted(const char *file, const void *arg)
{
	const struct wants *ws = arg;
	char f[128];

	for (size_t i = 0; i < ws->n; i++) {
		snprintf(f, sizeof f, "%s-%s.so", plugin_kind_name(ws->w[i].kind), ws->w[i].name);
		if (strcmp(f, file) == 0)
			return true;
	}
	return false;
}

int
plugins_load_wanted(const char *dir, const struct rdhpf_host_api *api, struct plugin_set *set,
                    const struct plugin_want *w, size_t n)
{
	struct wants ws = {w, n};

	if (set->dir == NULL) {
		memset(set, 0, sizeof *set);
		set->dir = xstrdup(dir);
	} else {
		/* A reload: what was refused is tried again (its mode fixed,
		 * the file replaced, a library it needs installed), except a
		 * file refused after dlopen that has not changed. */
		size_t k = 0;
		for (size_t i = 0; i < set->n_refused; i++) {
			if (held_unchanged(&set->refused[i])) {
				set->refused[k++] = set->refused[i];
				continue;
			}
			free(set->refused[i].path);
			free(set->refused[i].why);
		}
		set->n_refused = k;
	}
	if (load_files(set, api, file_wanted, &ws) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (plugins_find(set, w[i].kind, w[i].name) == NULL) /* another file name? */
			return load_files(set, api, NULL, NULL);
	}
	return 0;
}

const struct plugin *
plugins_find(const struct plugin_set *set, int kind, const char *name)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i]->info->kind == kind && strcmp(set->v[i]->info->name, name) == 0)
			return set->v[i];
	}
	return NULL;
}

const struct rdhpf_option_desc *const *
plugins_lookup_options(void *arg, int kind, const char *name)
{
	static const struct rdhpf_option_desc *const none[] = {NULL};
	const struct plugin *p = plugins_find(arg, kind, name);

	if (p == NULL)
		return NULL;
	return p->info->options ? p->info->options : none;
}

int
plugins_validate_option(void *arg, int kind, const char *name, const char *key, const char *value,
                        char *err, size_t errlen)
{
	const struct plugin *p = plugins_find(arg, kind, name);
	int (*fn)(const char *, const char *, char *, size_t);

	if (p == NULL)
		return 0;
	fn = RDHPF_SLOT(p->info, validate_option);
	if (fn == NULL)
		return 0;
	err[0] = '\0';
	if (fn(key, value, err, errlen) == RDHPF_OK)
		return 0;
	if (err[0] == '\0')
		snprintf(err, errlen, "invalid value");
	return -1;
}

void
plugin_caps_string(const struct rdhpf_plugin_info *info, char *buf, size_t len)
{
	static const struct {
		int kind;
		uint64_t bit;
		const char *name;
	} names[] = {
	    {RDHPF_KIND_TRANSPORT, RDHPF_TCAP_EXEC, "exec"},
	    {RDHPF_KIND_TRANSPORT, RDHPF_TCAP_UNIX_STREAM, "unix-stream"},
	    {RDHPF_KIND_TRANSPORT, RDHPF_TCAP_FORWARD_STATS, "forward-stats"},
	    {RDHPF_KIND_TRANSPORT, RDHPF_TCAP_HOLD_LISTENERS, "hold-listeners"},
	    {RDHPF_KIND_RUNTIME, RDHPF_RCAP_EVENTS, "events"},
	};
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (names[i].kind != info->kind || !(info->caps & names[i].bit))
			continue;
		int w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", names[i].name);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	if (off == 0)
		snprintf(buf, len, "-");
}

void
plugins_unload(struct plugin_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		dlclose(set->v[i]->dl);
		close(set->v[i]->fd);
		free(set->v[i]->path);
		free(set->v[i]);
	}
	for (size_t i = 0; i < set->n_refused; i++) {
		free(set->refused[i].path);
		free(set->refused[i].why);
	}
	for (size_t i = 0; i < set->n_held_fds; i++)
		close(set->held_fds[i]);
	free(set->held_fds);
	free(set->v);
	free(set->refused);
	free(set->dir);
	free(set->dir_error);
	memset(set, 0, sizeof *set);
}
