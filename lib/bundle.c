/* Bundles: writing a reproducible tar, and extracting a hostile one.
 *
 * The reader trusts nothing in the archive. Each header is vetted (count cap,
 * type, mode bits, name, layout, duplicates, size caps) before a byte of it is
 * written, and the bytes actually copied are counted against the caps again,
 * since a header can lie. Writing goes through archive_write_disk with the
 * SECURE_* flags as a second line of defence. */
#include "bundle.h"
#include "error.h"
#include "numparse.h"
#include "pathsafe.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_NAME "manifest.pb"
#define SIGNATURES_NAME "signatures.pb"
#define BLOBS_DIR "blobs"
#define BLOB_HEX_LEN 64
#define READ_BLOCK (64u * 1024u)

#define DEFAULT_MAX_ENTRIES 100000ull
#define DEFAULT_MAX_TOTAL (64ull << 30)
#define DEFAULT_MAX_ENTRY (16ull << 30)
/* manifest.pb and signatures.pb are read into memory: their own caps (the
 * manifest's is MANIFEST_MAX_BYTES). */
#define HEAD_MANIFEST_MAX (8ull << 20)
#define HEAD_SIGNATURES_MAX (1ull << 20)
/* What a verified bundle may carry beyond its manifest's blobs (unnamed
 * entries, skipped unread): a little, never a second payload. */
#define CARRY_MARGIN (16ull << 20)

/* ---- shared helpers ---------------------------------------------------- */

/* A printable, bounded copy of a hostile name for a one-line detail. */
static const char *shown(const char *name, char *buf, size_t cap)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(name ? name : "");
    for (; *p && o + 5 < cap; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '\'' || *p == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    if (*p && o + 4 <= cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static bool is_blob_name(const char *name)
{
    if (strncmp(name, BLOBS_DIR "/", sizeof BLOBS_DIR) != 0)
        return false;
    const char *hex = name + sizeof BLOBS_DIR;
    if (strlen(hex) != BLOB_HEX_LEN)
        return false;
    for (const char *p = hex; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static bool is_file_name(const char *name)
{
    return strcmp(name, MANIFEST_NAME) == 0 || strcmp(name, SIGNATURES_NAME) == 0 ||
           is_blob_name(name);
}

/* A set of names (open addressing), to refuse duplicates. */
struct nameset {
    char **slot;
    size_t cap, n;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void nameset_fini(struct nameset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}

static bool nameset_has(const struct nameset *s, const char *name)
{
    if (s->cap == 0)
        return false;
    for (size_t i = name_hash(name) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i])
            return false;
        if (strcmp(s->slot[i], name) == 0)
            return true;
    }
}

static void nameset_place(char **slot, size_t cap, char *name)
{
    size_t i = name_hash(name) & (cap - 1);
    while (slot[i])
        i = (i + 1) & (cap - 1);
    slot[i] = name;
}

/* Adds name (the caller checked it is absent). 0 or -ENOMEM. */
static int nameset_add(struct nameset *s, const char *name)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        char **nslot = calloc(ncap, sizeof *nslot);
        if (!nslot)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                nameset_place(nslot, ncap, s->slot[i]);
        free(s->slot);
        s->slot = nslot;
        s->cap = ncap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    nameset_place(s->slot, s->cap, copy);
    s->n++;
    return 0;
}

/* libarchive's errno, as ours: a real system error (no such file, disk full)
 * stays -errno; libarchive's own codes -- "misc" (-1), "file format"
 * (EILSEQ) and "programmer" (EINVAL) -- mean a bad archive. */
static int archive_code(struct archive *a, int fallback)
{
    int e = archive_errno(a);
    if (e <= 0 || e == EILSEQ || e == EINVAL)
        return fallback;
    return -e;
}

/* ---- limits ------------------------------------------------------------ */

/* An environment cap: unset keeps the built-in; a value may only lower it.
 * A larger value is refused rather than ignored, so that nobody believes
 * they raised a cap that still holds. */
static int env_cap(const char *var, uint64_t builtin, uint64_t *out)
{
    int rc = num_env_u64(var, builtin, 1, UINT64_MAX, out);
    if (rc < 0)
        return rc;
    if (*out > builtin)
        return err_set(FERRY_E_INVALID,
                       "%s %llu: above the built-in cap of %llu; it can only lower it", var,
                       (unsigned long long)*out, (unsigned long long)builtin);
    return 0;
}

int bundle_limits_default(struct bundle_limits *l)
{
    l->max_entries = DEFAULT_MAX_ENTRIES;
    l->max_total_bytes = DEFAULT_MAX_TOTAL;
    l->max_entry_bytes = DEFAULT_MAX_ENTRY;
    int rc = env_cap("FERRY_BUNDLE_MAX_ENTRIES", DEFAULT_MAX_ENTRIES, &l->max_entries);
    if (rc == 0)
        rc = env_cap("FERRY_BUNDLE_MAX_BYTES", DEFAULT_MAX_TOTAL, &l->max_total_bytes);
    if (rc < 0) {
        l->max_entries = DEFAULT_MAX_ENTRIES;
        l->max_total_bytes = DEFAULT_MAX_TOTAL;
    }
    if (l->max_entry_bytes > l->max_total_bytes)
        l->max_entry_bytes = l->max_total_bytes;
    return rc;
}

/* ---- writer ------------------------------------------------------------ */

struct bundle_writer {
    struct archive *a;
    char *path;
    char *tmp;
    int fd;
    struct nameset names;
    bool blobs_dir;     /* the blobs/ directory entry was written */
    bool in_member;     /* between begin and end */
    uint64_t want, got; /* of the open member */
    char member[128];   /* its name, for details */
    int failed;         /* first error; sticky */
    char failed_detail[512];
};

/* Records the first failure (and its detail) and returns it; later calls
 * repeat it, so a writer that went wrong can only be aborted or closed (which
 * removes the file). */
static int wfail(struct bundle_writer *w, int code)
{
    if (!w->failed) {
        w->failed = code;
        snprintf(w->failed_detail, sizeof w->failed_detail, "%s", err_detail());
    }
    return code;
}

static int wfailed(struct bundle_writer *w)
{
    return err_set(w->failed, "%s", w->failed_detail);
}

static int warchive(struct bundle_writer *w, const char *what)
{
    int code = archive_code(w->a, FERRY_E_ARCHIVE);
    const char *s = archive_error_string(w->a);
    if (code < 0 && code > FERRY_E_BASE) /* a system error: say which, not "Write error" */
        err_set(code, "writing %s (%s): %s", w->path, what, strerror(-code));
    else
        err_set(code, "%s: %s: %s", w->path, what, s ? s : "libarchive error");
    return wfail(w, code);
}

static void writer_free(struct bundle_writer *w)
{
    if (w->a)
        archive_write_free(w->a);
    if (w->fd >= 0)
        close(w->fd);
    nameset_fini(&w->names);
    free(w->path);
    free(w->tmp);
    free(w);
}

int bundle_writer_open(const char *path, struct bundle_writer **out)
{
    if (!path || !*path)
        return err_set(FERRY_E_INVALID, "bundle: empty output path");
    struct bundle_writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(-ENOMEM, "%s: out of memory", path);
    w->fd = -1;
    w->path = strdup(path);
    size_t tlen = strlen(path) + sizeof ".tmp.XXXXXX";
    w->tmp = malloc(tlen);
    if (!w->path || !w->tmp) {
        writer_free(w);
        return err_set(-ENOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, tlen, "%s.tmp.XXXXXX", path);
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;
        writer_free(w);
        return err_set(-e, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    /* mkstemp makes 0600; a bundle is meant to be carried and read. */
    if (fchmod(w->fd, 0644) < 0) {
        int e = errno;
        bundle_writer_abort(w);
        return err_set(-e, "%s: chmod: %s", path, strerror(e));
    }
    w->a = archive_write_new();
    if (!w->a) {
        bundle_writer_abort(w);
        return err_set(-ENOMEM, "%s: out of memory", path);
    }
    /* pax restricted: plain ustar unless a field needs more (sizes over
     * 8 GiB); no compression filter. */
    if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        archive_write_add_filter_none(w->a) != ARCHIVE_OK ||
        archive_write_open_fd(w->a, w->fd) != ARCHIVE_OK) {
        int rc = warchive(w, "cannot start archive");
        bundle_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Writes one header with the reproducible metadata. */
static int write_header(struct bundle_writer *w, const char *name, unsigned type, uint64_t size)
{
    struct archive_entry *e = archive_entry_new();
    if (!e) {
        err_set(-ENOMEM, "%s: out of memory", w->path);
        return wfail(w, -ENOMEM);
    }
    archive_entry_copy_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_size(e, (la_int64_t)size);
    int r = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK) {
        char buf[160];
        char what[200];
        snprintf(what, sizeof what, "member '%s'", shown(name, buf, sizeof buf));
        return warchive(w, what);
    }
    return 0;
}

int bundle_writer_begin(struct bundle_writer *w, const char *name, uint64_t size)
{
    char buf[160];
    if (w->failed)
        return wfailed(w);
    if (w->in_member) {
        err_set(FERRY_E_ARCHIVE, "%s: member '%s' begun while '%s' is open", w->path,
                shown(name, buf, sizeof buf), w->member);
        return wfail(w, FERRY_E_ARCHIVE);
    }
    if (!is_file_name(name)) {
        err_set(FERRY_E_INVALID, "%s: member '%s': not a bundle member name", w->path,
                shown(name, buf, sizeof buf));
        return wfail(w, FERRY_E_INVALID);
    }
    if (nameset_has(&w->names, name)) {
        err_set(FERRY_E_INVALID, "%s: member '%s': already written", w->path, name);
        return wfail(w, FERRY_E_INVALID);
    }
    /* The signed part first: a reader verifies it before any blob. */
    const char *head = w->names.n == 0 ? MANIFEST_NAME : w->names.n == 1 ? SIGNATURES_NAME : NULL;
    if (head && strcmp(name, head) != 0) {
        err_set(FERRY_E_INVALID,
                "%s: member '%s': out of order: " MANIFEST_NAME " first, then " SIGNATURES_NAME,
                w->path, name);
        return wfail(w, FERRY_E_INVALID);
    }
    if (size > (uint64_t)INT64_MAX) {
        err_set(FERRY_E_LIMIT, "%s: member '%s': size too large", w->path, name);
        return wfail(w, FERRY_E_LIMIT);
    }
    int rc = nameset_add(&w->names, name);
    if (rc < 0) {
        err_set(rc, "%s: out of memory", w->path);
        return wfail(w, rc);
    }
    if (is_blob_name(name) && !w->blobs_dir) {
        if ((rc = write_header(w, BLOBS_DIR "/", AE_IFDIR, 0)) < 0)
            return rc;
        w->blobs_dir = true;
    }
    if ((rc = write_header(w, name, AE_IFREG, size)) < 0)
        return rc;
    snprintf(w->member, sizeof w->member, "%s", name);
    w->in_member = true;
    w->want = size;
    w->got = 0;
    return 0;
}

int bundle_writer_write(struct bundle_writer *w, const void *data, size_t len)
{
    if (w->failed)
        return wfailed(w);
    if (!w->in_member) {
        err_set(FERRY_E_ARCHIVE, "%s: write outside a member", w->path);
        return wfail(w, FERRY_E_ARCHIVE);
    }
    if (len > w->want - w->got) {
        err_set(FERRY_E_ARCHIVE, "%s: member '%s': %llu bytes written, more than the %llu declared",
                w->path, w->member, (unsigned long long)(w->got + len),
                (unsigned long long)w->want);
        return wfail(w, FERRY_E_ARCHIVE);
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        la_ssize_t n = archive_write_data(w->a, p, left);
        if (n <= 0)
            return warchive(w, w->member);
        p += n;
        left -= (size_t)n;
    }
    w->got += len;
    return 0;
}

int bundle_writer_end(struct bundle_writer *w)
{
    if (w->failed)
        return wfailed(w);
    if (!w->in_member) {
        err_set(FERRY_E_ARCHIVE, "%s: end outside a member", w->path);
        return wfail(w, FERRY_E_ARCHIVE);
    }
    if (w->got != w->want) {
        err_set(FERRY_E_ARCHIVE, "%s: member '%s': %llu bytes written, fewer than the %llu declared",
                w->path, w->member, (unsigned long long)w->got, (unsigned long long)w->want);
        return wfail(w, FERRY_E_ARCHIVE);
    }
    if (archive_write_finish_entry(w->a) != ARCHIVE_OK)
        return warchive(w, w->member);
    w->in_member = false;
    return 0;
}

int bundle_writer_add(struct bundle_writer *w, const char *name, const void *data, size_t len)
{
    int rc = bundle_writer_begin(w, name, len);
    if (rc == 0 && len > 0)
        rc = bundle_writer_write(w, data, len);
    if (rc == 0)
        rc = bundle_writer_end(w);
    return rc;
}

/* fsync the directory holding path, so the rename is durable. */
static int fsync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    char *slash = strrchr(copy, '/');
    const char *dir = ".";
    if (slash == copy)
        dir = "/";
    else if (slash) {
        *slash = '\0';
        dir = copy;
    }
    int rc = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        rc = -errno;
    if (dfd >= 0)
        close(dfd);
    free(copy);
    return rc;
}

int bundle_writer_close(struct bundle_writer *w)
{
    int rc;
    if (w->failed) {
        rc = wfailed(w);
        bundle_writer_abort(w);
        return rc;
    }
    if (w->in_member) {
        rc = err_set(FERRY_E_ARCHIVE, "%s: closed with member '%s' unfinished", w->path,
                     w->member);
        bundle_writer_abort(w);
        return rc;
    }
    if (w->names.n < 2) {
        rc = err_set(FERRY_E_ARCHIVE, "%s: closed before " MANIFEST_NAME " and " SIGNATURES_NAME
                     " were written", w->path);
        bundle_writer_abort(w);
        return rc;
    }
    if (archive_write_close(w->a) != ARCHIVE_OK) {
        rc = warchive(w, "cannot finish archive");
        bundle_writer_abort(w);
        return rc;
    }
    if (fsync(w->fd) < 0) {
        int e = errno;
        rc = err_set(-e, "%s: fsync: %s", w->path, strerror(e));
        bundle_writer_abort(w);
        return rc;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0) {
        int e = errno;
        rc = err_set(-e, "%s: close: %s", w->path, strerror(e));
        bundle_writer_abort(w);
        return rc;
    }
    if (rename(w->tmp, w->path) < 0) {
        int e = errno;
        rc = err_set(-e, "%s: rename: %s", w->path, strerror(e));
        bundle_writer_abort(w);
        return rc;
    }
    rc = fsync_parent(w->path);
    if (rc < 0) {
        err_set(rc, "%s: fsync directory: %s", w->path, strerror(-rc));
        unlink(w->path); /* the contract: on failure, no file */
    }
    writer_free(w);
    return rc;
}

void bundle_writer_abort(struct bundle_writer *w)
{
    if (!w)
        return;
    /* Unlink first: archive_write_free may still flush an end-of-archive
     * into the (now nameless) file. (archive_write_fail would skip that, but
     * leaks libarchive's buffers in 3.6.) */
    if (w->tmp)
        unlink(w->tmp);
    writer_free(w);
}

/* ---- reader ------------------------------------------------------------ */

struct extract {
    const char *path;    /* the bundle, for details */
    const struct bundle_limits *lim;
    char *root;          /* canonical staging dir */
    struct archive *in;
    struct archive *out;
    struct nameset names;
    uint64_t entries;
    uint64_t total;      /* bytes read so far (copied or skipped), all entries */
    char *dest;          /* buffer for root/name */
    size_t dest_cap;

    bundle_verify_fn verify; /* NULL: shape only, every blob is extracted */
    void *verify_arg;
    uint8_t *head[2];        /* manifest.pb, signatures.pb, in memory */
    size_t head_len[2];
    struct bundle_plan plan; /* sorted by hex once verified */
    bool verified;
    uint64_t written;        /* blob bytes written to staging */
    uint64_t plan_bytes;     /* the most that may be written */
    uint64_t read_cap;       /* the most a verified bundle may carry */
};

static int refuse(const struct extract *x, int code, const char *name, const char *why)
{
    char buf[240];
    return err_set(code, "%s: entry '%s': %s", x->path, shown(name, buf, sizeof buf), why);
}

static int read_error(const struct extract *x, const char *name)
{
    const char *s = archive_error_string(x->in);
    if (!s)
        s = "unreadable archive";
    if (name) {
        char buf[240];
        return err_set(FERRY_E_ARCHIVE, "%s: entry '%s': %s", x->path,
                       shown(name, buf, sizeof buf), s);
    }
    return err_set(FERRY_E_ARCHIVE, "%s: %s", x->path, s);
}

/* An error from archive_write_disk: a system error keeps its errno; a refusal
 * by the SECURE_* checks is an unsafe entry. */
static int disk_error(const struct extract *x, const char *name)
{
    int code = archive_code(x->out, FERRY_E_UNSAFE_ENTRY);
    const char *s = archive_error_string(x->out);
    char buf[240];
    if (code < 0 && code > FERRY_E_BASE && x->dest) /* a full disk, say, not "Write failed" */
        return err_set(code, "%s: entry '%s': writing %s: %s", x->path,
                       shown(name, buf, sizeof buf), x->dest, strerror(-code));
    return err_set(code, "%s: entry '%s': %s", x->path, shown(name, buf, sizeof buf),
                   s ? s : "cannot write");
}

static const char *type_refusal(struct archive_entry *e)
{
    if (archive_entry_hardlink(e))
        return "hardlink not allowed";
    if (archive_entry_symlink(e))
        return "symlink not allowed";
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
    case AE_IFDIR:
        return NULL;
    case AE_IFLNK: return "symlink not allowed";
    case AE_IFCHR: return "character device not allowed";
    case AE_IFBLK: return "block device not allowed";
    case AE_IFIFO: return "FIFO not allowed";
    case AE_IFSOCK: return "socket not allowed";
    default: return "entry type not allowed";
    }
}

/* Vets one header; on success *name_out is the entry's bundle name (a
 * pointer into namebuf). Writes nothing. */
static int vet(struct extract *x, struct archive_entry *e, char *namebuf, size_t cap,
               const char **name_out)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, "", "entry without a name");

    if (x->entries >= x->lim->max_entries) {
        char why[96];
        snprintf(why, sizeof why, "more than %llu entries",
                 (unsigned long long)x->lim->max_entries);
        return refuse(x, FERRY_E_LIMIT, raw, why);
    }
    x->entries++;

    const char *why = type_refusal(e);
    if (why)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw, why);
    bool dir = archive_entry_filetype(e) == AE_IFDIR;

    mode_t mode = archive_entry_mode(e);
    if (mode & S_ISUID)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw, "setuid bit not allowed");
    if (mode & S_ISGID)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw, "setgid bit not allowed");
    if (mode & S_ISVTX)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw, "sticky bit not allowed");
    if (archive_entry_sparse_count(e) > 0)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw, "sparse entry not allowed");

    size_t len = strlen(raw);
    if (len >= cap)
        return refuse(x, FERRY_E_UNSAFE_PATH, raw, "too long");
    memcpy(namebuf, raw, len + 1);
    if (dir && len > 1 && namebuf[len - 1] == '/')
        namebuf[--len] = '\0';

    int rc = path_check(namebuf);
    if (rc < 0) {
        /* Reword pathsafe's "path '<name>': <reason>" as ours. */
        const char *d = err_detail();
        size_t shown_len = len < 200 ? len : 200;
        size_t pre = strlen("path '") + shown_len + strlen("': ");
        const char *reason = d;
        if (strncmp(d, "path '", 6) == 0 && strlen(d) >= pre &&
            strncmp(d + pre - 3, "': ", 3) == 0)
            reason = d + pre;
        char r[256];
        snprintf(r, sizeof r, "%s", reason);
        return refuse(x, rc, raw, r);
    }
    if (dir) {
        if (strcmp(namebuf, BLOBS_DIR) != 0)
            return refuse(x, FERRY_E_UNSAFE_ENTRY, raw,
                          is_file_name(namebuf) ? "must be a regular file, not a directory"
                                                : "not a bundle member name");
    } else if (!is_file_name(namebuf)) {
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw,
                      strcmp(namebuf, BLOBS_DIR) == 0 ? "must be a directory"
                                                      : "not a bundle member name");
    }
    if (nameset_has(&x->names, namebuf))
        return refuse(x, FERRY_E_UNSAFE_ENTRY, raw, "duplicate entry");
    if ((rc = nameset_add(&x->names, namebuf)) < 0)
        return err_set(rc, "%s: out of memory", x->path);

    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
        return refuse(x, FERRY_E_ARCHIVE, raw, "entry without a valid size");
    uint64_t size = (uint64_t)archive_entry_size(e);
    if (size > x->lim->max_entry_bytes) {
        char w[96];
        snprintf(w, sizeof w, "%llu bytes, over the %llu byte entry limit",
                 (unsigned long long)size, (unsigned long long)x->lim->max_entry_bytes);
        return refuse(x, FERRY_E_LIMIT, raw, w);
    }
    if (size > x->lim->max_total_bytes - x->total) {
        char w[96];
        snprintf(w, sizeof w, "bundle over the %llu byte total limit",
                 (unsigned long long)x->lim->max_total_bytes);
        return refuse(x, FERRY_E_LIMIT, raw, w);
    }
    *name_out = namebuf;
    return 0;
}

/* Copies one entry's data, counting what actually arrives. */
static int copy_data(struct extract *x, const char *name, uint64_t declared)
{
    uint64_t copied = 0;
    for (;;) {
        const void *buf;
        size_t n;
        la_int64_t off;
        int r = archive_read_data_block(x->in, &buf, &n, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK)
            return read_error(x, name);
        if (off < 0 || (uint64_t)off != copied)
            return refuse(x, FERRY_E_UNSAFE_ENTRY, name, "non-contiguous data not allowed");
        if (n > declared - copied)
            return refuse(x, FERRY_E_LIMIT, name, "more data than its header declares");
        if (n > x->lim->max_total_bytes - x->total)
            return refuse(x, FERRY_E_LIMIT, name, "bundle over the total byte limit");
        copied += n;
        x->total += n;
        if (n > 0 && archive_write_data_block(x->out, buf, n, off) != ARCHIVE_OK)
            return disk_error(x, name);
    }
    if (copied != declared)
        return refuse(x, FERRY_E_ARCHIVE, name, "less data than its header declares");
    return 0;
}

static int by_hex(const void *a, const void *b)
{
    return strcmp(((const struct bundle_blob *)a)->hex, ((const struct bundle_blob *)b)->hex);
}

/* Reads manifest.pb or signatures.pb into memory (index 0 or 1). */
static int read_head(struct extract *x, int which, const char *name, uint64_t declared)
{
    uint64_t cap = which == 0 ? HEAD_MANIFEST_MAX : HEAD_SIGNATURES_MAX;
    if (declared > cap) {
        char w[96];
        snprintf(w, sizeof w, "%llu bytes, over its %llu byte limit",
                 (unsigned long long)declared, (unsigned long long)cap);
        return refuse(x, FERRY_E_LIMIT, name, w);
    }
    uint8_t *buf = malloc((size_t)declared + 1); /* +1: room to see one byte too many */
    if (!buf)
        return err_set(-ENOMEM, "%s: out of memory", x->path);
    uint64_t got = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(x->in, buf + got, (size_t)(declared - got) + 1);
        if (n < 0) {
            free(buf);
            return read_error(x, name);
        }
        if (n == 0)
            break;
        if ((uint64_t)n > declared - got) {
            free(buf);
            return refuse(x, FERRY_E_LIMIT, name, "more data than its header declares");
        }
        got += (uint64_t)n;
        x->total += (uint64_t)n;
    }
    if (got != declared) {
        free(buf);
        return refuse(x, FERRY_E_ARCHIVE, name, "less data than its header declares");
    }
    x->head[which] = buf;
    x->head_len[which] = (size_t)got;
    return 0;
}

/* Both heads are in: the caller's verifier decides what may follow. */
static int run_verify(struct extract *x)
{
    int rc = x->verify(x->verify_arg, x->head[0], x->head_len[0], x->head[1], x->head_len[1],
                       &x->plan);
    if (rc < 0)
        return rc;
    x->plan_bytes = 0;
    for (size_t i = 0; i < x->plan.n; i++) {
        if (x->plan.blobs[i].size > UINT64_MAX - x->plan_bytes)
            return err_set(FERRY_E_LIMIT, "%s: manifest sizes overflow", x->path);
        x->plan_bytes += x->plan.blobs[i].size;
    }
    if (x->plan.n > 1)
        qsort(x->plan.blobs, x->plan.n, sizeof *x->plan.blobs, by_hex);
    for (size_t i = 1; i < x->plan.n; i++)
        if (strcmp(x->plan.blobs[i - 1].hex, x->plan.blobs[i].hex) == 0)
            return err_set(FERRY_E_INVALID, "%s: blob %s planned twice", x->path,
                           x->plan.blobs[i].hex);
    uint64_t carried = x->plan.carried > x->plan_bytes ? x->plan.carried : x->plan_bytes;
    x->read_cap = carried > UINT64_MAX - x->total - CARRY_MARGIN
                      ? UINT64_MAX
                      : x->total + carried + CARRY_MARGIN;
    x->verified = true;
    return 0;
}

/* Writes a head kept in memory to staging (shape-only extraction). */
static int write_head(struct extract *x, struct archive_entry *e, int which, const char *name)
{
    if (archive_write_header(x->out, e) != ARCHIVE_OK)
        return disk_error(x, name);
    if (x->head_len[which] > 0 &&
        archive_write_data(x->out, x->head[which], x->head_len[which]) !=
            (la_ssize_t)x->head_len[which])
        return disk_error(x, name);
    if (archive_write_finish_entry(x->out) != ARCHIVE_OK)
        return disk_error(x, name);
    return 0;
}

static int extract_entry(struct extract *x, struct archive_entry *e)
{
    char namebuf[PATH_REL_MAX + 2];
    const char *name = NULL;
    uint64_t index = x->entries; /* vet counts this entry */
    int rc = vet(x, e, namebuf, sizeof namebuf, &name);
    if (rc < 0)
        return rc;
    bool dir = archive_entry_filetype(e) == AE_IFDIR;
    uint64_t declared = dir ? 0 : (uint64_t)archive_entry_size(e);

    /* The signed part comes first, so that it is checked before a byte of
     * anything it vouches for is read, let alone written. */
    int head = strcmp(name, MANIFEST_NAME) == 0 ? 0 : strcmp(name, SIGNATURES_NAME) == 0 ? 1 : -1;
    if (index < 2 && head != (int)index)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, name,
                      "out of order: a bundle begins with " MANIFEST_NAME
                      ", then " SIGNATURES_NAME);
    if (head >= 0) {
        if ((rc = read_head(x, head, name, declared)) < 0)
            return rc;
        if (x->verify) /* kept in memory, never written */
            return head == 1 ? run_verify(x) : 0;
    }

    /* The order check above makes this unreachable; it stays as the rule
     * itself: nothing is written before the signed part is verified. */
    if (head < 0 && x->verify && !x->verified)
        return refuse(x, FERRY_E_UNSAFE_ENTRY, name, "before the signed part was verified");
    const struct bundle_blob *want = NULL;
    if (head < 0 && !dir && x->verify) {
        struct bundle_blob key;
        snprintf(key.hex, sizeof key.hex, "%s", name + sizeof BLOBS_DIR);
        want = x->plan.n ? bsearch(&key, x->plan.blobs, x->plan.n, sizeof key, by_hex) : NULL;
        if (want && declared != want->size) {
            /* Larger is the decompression bomb: refused before a byte. */
            char w[160];
            snprintf(w, sizeof w, "%llu bytes, but the signed manifest says %llu",
                     (unsigned long long)declared, (unsigned long long)want->size);
            return refuse(x, declared > want->size ? FERRY_E_LIMIT : FERRY_E_DIGEST, name, w);
        }
        if (declared > x->read_cap - x->total)
            return refuse(x, FERRY_E_LIMIT, name,
                          "the bundle carries more than its manifest accounts for");
        if (!want) {
            /* Not one the manifest names (or one the destination has): never
             * written; its bytes are only skipped. */
            x->total += declared;
            if (archive_read_data_skip(x->in) != ARCHIVE_OK)
                return read_error(x, name);
            return 0;
        }
        if (declared > x->plan_bytes - x->written)
            return refuse(x, FERRY_E_LIMIT, name, "more than the manifest's total size");
    }

    size_t need = strlen(x->root) + 1 + strlen(name) + 1;
    if (need > x->dest_cap) {
        char *nd = realloc(x->dest, need);
        if (!nd)
            return err_set(-ENOMEM, "%s: out of memory", x->path);
        x->dest = nd;
        x->dest_cap = need;
    }
    snprintf(x->dest, x->dest_cap, "%s/%s", x->root, name);
    archive_entry_copy_pathname(e, x->dest);
    archive_entry_set_perm(e, dir ? 0755 : 0644);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (dir)
        archive_entry_set_size(e, 0);

    if (head >= 0)
        return write_head(x, e, head, name); /* shape-only extraction */
    if (archive_write_header(x->out, e) != ARCHIVE_OK)
        return disk_error(x, name);
    if (!dir) {
        if ((rc = copy_data(x, name, declared)) < 0)
            return rc;
        x->written += declared;
    }
    if (archive_write_finish_entry(x->out) != ARCHIVE_OK)
        return disk_error(x, name);
    return 0;
}

/* staging must be an existing, empty directory; *root gets its canonical
 * path (no symlinks, so SECURE_SYMLINKS only judges what we create). */
static int check_staging(const char *path, const char *staging, char **root)
{
    int fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return err_set(-e, "%s: staging directory %s: %s", path, staging, strerror(e));
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return err_set(-e, "%s: staging directory %s: %s", path, staging, strerror(e));
    }
    struct dirent *de;
    bool empty = true;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = false;
            break;
        }
    }
    int e = errno;
    closedir(d);
    if (!empty)
        return err_set(-EEXIST, "%s: staging directory %s is not empty", path, staging);
    if (e)
        return err_set(-e, "%s: staging directory %s: %s", path, staging, strerror(e));
    char *r = realpath(staging, NULL);
    if (!r) {
        e = errno;
        return err_set(-e, "%s: staging directory %s: %s", path, staging, strerror(e));
    }
    *root = r;
    return 0;
}

/* tar, plain or gzip or zstd. A filter that is not built in answers
 * ARCHIVE_WARN (it would run an external program on hostile input) or
 * FATAL: then start over without it. */
static struct archive *reader_new(bool gzip, bool zstd)
{
    struct archive *a = archive_read_new();
    if (!a)
        return NULL;
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_filter_none(a) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    if (gzip && archive_read_support_filter_gzip(a) != ARCHIVE_OK) {
        archive_read_free(a);
        return reader_new(false, zstd);
    }
    if (zstd && archive_read_support_filter_zstd(a) != ARCHIVE_OK) {
        archive_read_free(a);
        return reader_new(gzip, false);
    }
    return a;
}

int bundle_extract(const char *path, const char *staging_dir, const struct bundle_limits *lim)
{
    return bundle_extract_verified(path, staging_dir, lim, NULL, NULL);
}

int bundle_extract_verified(const char *path, const char *staging_dir,
                            const struct bundle_limits *lim, bundle_verify_fn verify, void *arg)
{
    struct bundle_limits deflim;
    if (!lim) {
        int lrc = bundle_limits_default(&deflim);
        if (lrc < 0)
            return lrc;
        lim = &deflim;
    }
    /* "" would make libarchive read stdin. */
    if (!path || !*path || !staging_dir || !*staging_dir)
        return err_set(FERRY_E_INVALID, "bundle_extract: empty path");
    struct extract x = {.path = path, .lim = lim, .verify = verify, .verify_arg = arg};
    int rc = check_staging(path, staging_dir, &x.root);
    if (rc < 0)
        return rc;

    x.in = reader_new(true, true);
    x.out = archive_write_disk_new();
    if (!x.in || !x.out) {
        rc = err_set(FERRY_E_ARCHIVE, "%s: cannot set up libarchive", path);
        goto out;
    }
    /* Not ABSOLUTEPATHS: the pathnames handed to archive_write_disk are our
     * own canonical root + a vetted relative name, so always absolute; the
     * entry's own name was already refused if absolute. Never PERM, OWNER,
     * XATTR, ACL, FFLAGS or TIME: nothing from the archive but bytes. */
    if (archive_write_disk_set_options(x.out, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                  ARCHIVE_EXTRACT_NO_OVERWRITE) != ARCHIVE_OK) {
        rc = err_set(FERRY_E_ARCHIVE, "%s: cannot set up libarchive", path);
        goto out;
    }
    if (archive_read_open_filename(x.in, path, READ_BLOCK) != ARCHIVE_OK) {
        const char *s = archive_error_string(x.in);
        rc = err_set(archive_code(x.in, FERRY_E_ARCHIVE), "%s: %s", path, s ? s : "cannot open");
        goto out;
    }

    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(x.in, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            /* WARN too: a damaged or dubious header is not worth guessing at. */
            rc = read_error(&x, NULL);
            goto out;
        }
        if ((rc = extract_entry(&x, e)) < 0)
            goto out;
    }
    if (archive_write_close(x.out) != ARCHIVE_OK) {
        const char *s = archive_error_string(x.out);
        rc = err_set(archive_code(x.out, FERRY_E_ARCHIVE), "%s: finishing extraction: %s", path,
                     s ? s : "cannot write");
        goto out;
    }
    if (!nameset_has(&x.names, MANIFEST_NAME)) {
        rc = err_set(FERRY_E_ARCHIVE, "%s: no " MANIFEST_NAME, path);
        goto out;
    }
    if (!nameset_has(&x.names, SIGNATURES_NAME)) {
        rc = err_set(FERRY_E_ARCHIVE, "%s: no " SIGNATURES_NAME, path);
        goto out;
    }
    rc = 0;
out:
    if (x.in)
        archive_read_free(x.in);
    if (x.out)
        archive_write_free(x.out);
    nameset_fini(&x.names);
    free(x.head[0]);
    free(x.head[1]);
    free(x.plan.blobs);
    free(x.dest);
    free(x.root);
    return rc;
}
