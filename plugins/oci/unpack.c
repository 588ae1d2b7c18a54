/* Layers into a root file system: see unpack.h for the rules. */
#include "unpack.h"
#include "error.h"
#include "pathsafe.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define READ_BLOCK (64u << 10)
#define RM_DEPTH_MAX 256

/* ---- options ---------------------------------------------------------------- */

static int env_cap(const char *name, uint64_t *cap)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n == 0 || v[0] == '-')
        return err_set(FERRY_E_INVALID, "%s '%s': expected a positive decimal integer", name, v);
    if (n < *cap)
        *cap = n;
    return 0;
}

int unpack_opts_default(struct unpack_opts *o)
{
    o->max_entries = UNPACK_MAX_ENTRIES_DEFAULT;
    o->max_bytes = UNPACK_MAX_BYTES_DEFAULT;
    const char *s = getenv("FERRY_OCI_ALLOW_SETID");
    o->allow_setid = s && strcmp(s, "1") == 0;
    int rc = env_cap("FERRY_OCI_MAX_ENTRIES", &o->max_entries);
    if (rc == 0)
        rc = env_cap("FERRY_OCI_MAX_BYTES", &o->max_bytes);
    return rc;
}

/* ---- the digest ------------------------------------------------------------- */

int unpack_check_digest(const char *path, const char *digest)
{
    if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 7 + 64)
        return err_set(FERRY_E_INVALID, "%s: digest '%.80s' is not sha256:HEX", path, digest);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    unsigned char *buf = malloc(READ_BLOCK);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, READ_BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(-errno, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        crypto_hash_sha256_update(&h, buf, (unsigned long long)n);
    }
    free(buf);
    close(fd);
    if (rc < 0)
        return rc;
    unsigned char out[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&h, out);
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, out, sizeof out);
    if (strcmp(hex, digest + 7) != 0)
        return err_set(FERRY_E_DIGEST, "%s: sha256 is %.16s..., the manifest says %.23s...", path,
                       hex, digest);
    return 0;
}

/* ---- resolving inside the rootfs ---------------------------------------------- */

static int no_openat2; /* set once the kernel says ENOSYS */

/* An O_PATH descriptor of directory rel ("" is the root) inside the root at
 * rootfd: symlinks on the way resolve as if rootfd were "/". */
static int resolve_dir(int rootfd, const char *rel)
{
    if (!*rel)
        return openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!no_openat2) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != ENOSYS)
            return -errno;
        no_openat2 = 1;
    }
    /* Without openat2: one component at a time, never through a symlink. */
    char buf[PATH_REL_MAX + 1];
    snprintf(buf, sizeof buf, "%s", rel);
    int cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (char *save = NULL, *c = strtok_r(buf, "/", &save); cur >= 0 && c; c = strtok_r(NULL, "/", &save)) {
        int next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(cur);
        if (next < 0)
            return e == ENOTDIR ? -ELOOP : -e;
        cur = next;
    }
    return cur < 0 ? -errno : cur;
}

/* The parent of rel inside the root, made (0755, root's) where missing.
 * *leaf points at rel's last component. */
static int open_parent(int rootfd, char *rel, const char **leaf)
{
    char *slash = strrchr(rel, '/');
    if (!slash) {
        *leaf = rel;
        return resolve_dir(rootfd, "");
    }
    *slash = '\0';
    *leaf = slash + 1;
    int fd = resolve_dir(rootfd, rel);
    if (fd != -ENOENT) {
        *slash = '/';
        return fd;
    }
    /* Make each missing component below the deepest one that resolves. */
    for (char *p = rel;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        int d = resolve_dir(rootfd, rel);
        if (d == -ENOENT) {
            char *cut = strrchr(rel, '/');
            const char *name = cut ? cut + 1 : rel;
            if (cut)
                *cut = '\0';
            int up = resolve_dir(rootfd, cut ? rel : "");
            if (cut)
                *cut = '/';
            if (up < 0) {
                *p = saved;
                *slash = '/';
                return up;
            }
            int mk = mkdirat(up, name, 0755) < 0 && errno != EEXIST ? -errno : 0;
            close(up);
            if (mk < 0) {
                *p = saved;
                *slash = '/';
                return mk;
            }
        } else if (d < 0) {
            *p = saved;
            *slash = '/';
            return d;
        } else {
            close(d);
        }
        *p = saved;
        if (!saved)
            break;
    }
    fd = resolve_dir(rootfd, rel);
    *slash = '/';
    return fd;
}

/* ---- removing ---------------------------------------------------------------- */

static int rm_at(int dirfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    if (depth > RM_DEPTH_MAX)
        return -ELOOP;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = rm_at(fd, e->d_name, depth + 1);
    }
    closedir(d);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

int unpack_rm_rf(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    const char *name = buf;
    int dfd;
    if (slash) {
        *slash = '\0';
        name = slash + 1;
        dfd = open(slash == buf ? "/" : buf, O_PATH | O_DIRECTORY | O_CLOEXEC);
    } else {
        dfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = rm_at(dfd, name, 0);
    close(dfd);
    return rc;
}

/* ---- one layer --------------------------------------------------------------- */

/* What this layer wrote, for its opaque whiteouts: they hide lower layers'
 * entries of a directory, not the layer's own. */
struct written {
    char **v;
    size_t n, cap;
};

static int written_add(struct written *w, const char *rel)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        char **g = realloc(w->v, cap * sizeof *g);
        if (!g)
            return -ENOMEM;
        w->v = g;
        w->cap = cap;
    }
    if (!(w->v[w->n] = strdup(rel)))
        return -ENOMEM;
    w->n++;
    return 0;
}

static void written_free(struct written *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
}

/* 0: rel is not in this layer; 1: it is, exactly; 2: something below it is. */
static int written_has(const struct written *w, const char *rel)
{
    size_t n = strlen(rel);
    int best = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (strncmp(w->v[i], rel, n) != 0)
            continue;
        if (w->v[i][n] == '\0')
            return 1;
        if (w->v[i][n] == '/')
            best = 2;
    }
    return best;
}

/* Empty directory dirfd (rel inside the root) of whatever this layer did
 * not write itself. */
static int opaque_clear(int dirfd, const char *rel, const struct written *w, int depth)
{
    if (depth > PATH_DEPTH_MAX)
        return -ELOOP;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    char child[PATH_REL_MAX + PATH_COMPONENT_MAX + 2];
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        int has = written_has(w, child);
        struct stat st;
        if (has == 0) {
            rc = rm_at(fd, e->d_name, 0);
        } else if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            /* Written by this layer, but lower layers may have filled it. */
            int sub = openat(fd, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = -errno;
            } else {
                rc = opaque_clear(sub, child, w, depth + 1);
                close(sub);
            }
        }
    }
    closedir(d);
    return rc;
}

struct layer_ctx {
    int rootfd;
    const char *what;
    const struct unpack_opts *o;
    struct unpack_stats *st;
    struct written w;
};

static int refuse(struct layer_ctx *c, int code, const char *name, const char *why)
{
    char shown[201];
    size_t i = 0;
    for (; i < sizeof shown - 1 && name[i]; i++) {
        unsigned char ch = (unsigned char)name[i];
        shown[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    shown[i] = '\0';
    return err_set(code, "%s: entry '%s': %s", c->what, shown, why);
}

/* A tar name as a checked relative path; 1 for the root itself. */
static int entry_rel(struct layer_ctx *c, const char *raw, char *out, size_t cap)
{
    const char *p = raw;
    for (;;) {
        if (*p == '/')
            p++;
        else if (p[0] == '.' && p[1] == '/')
            p += 2;
        else
            break;
    }
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    if (n == 0 || (n == 1 && p[0] == '.'))
        return 1;
    if (n >= cap)
        return refuse(c, FERRY_E_UNSAFE_PATH, raw, "name too long");
    memcpy(out, p, n);
    out[n] = '\0';
    if (path_check(out) < 0) {
        char why[300];
        const char *d = err_detail();
        const char *colon = strstr(d, "': ");
        snprintf(why, sizeof why, "%s", colon ? colon + 3 : d);
        return refuse(c, FERRY_E_UNSAFE_PATH, raw, why);
    }
    return 0;
}

static mode_t entry_mode(struct layer_ctx *c, mode_t perm)
{
    perm &= 07777;
    if ((perm & (S_ISUID | S_ISGID)) && !c->o->allow_setid) {
        perm &= ~(mode_t)(S_ISUID | S_ISGID);
        c->st->setid_dropped++;
    }
    return perm;
}

/* Owner, then mode (chown clears setuid bits), of what fd is. */
static int set_owner_mode(int fd, struct archive_entry *e, mode_t mode)
{
    if (geteuid() == 0 && fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0)
        return -errno;
    return fchmod(fd, mode) < 0 ? -errno : 0;
}

static int write_data(struct layer_ctx *c, struct archive *a, int fd, const char *name)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
        if (off < 0)
            return refuse(c, FERRY_E_ARCHIVE, name, "bad data offset");
        if (c->st->bytes + len > c->o->max_bytes)
            return err_set(FERRY_E_LIMIT, "%s: more than %llu bytes of files in the image", c->what,
                           (unsigned long long)c->o->max_bytes);
        c->st->bytes += len;
        const char *p = buf;
        size_t left = len;
        off_t at = (off_t)off;
        while (left > 0) {
            ssize_t w = pwrite(fd, p, left, at);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return err_set(-errno, "%s: entry '%s': %s", c->what, name, strerror(errno));
            p += w;
            left -= (size_t)w;
            at += w;
        }
    }
    if (r != ARCHIVE_EOF)
        return err_set(FERRY_E_ARCHIVE, "%s: entry '%s': %s", c->what, name, archive_error_string(a));
    return 0;
}

static int do_whiteout(struct layer_ctx *c, int pfd, const char *rel, const char *leaf)
{
    c->st->whiteouts++;
    if (strcmp(leaf, WH_OPAQUE) == 0) {
        char dir[PATH_REL_MAX + 1];
        const char *slash = strrchr(rel, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - rel) : 0, rel);
        int rc = opaque_clear(pfd, dir, &c->w, 0);
        return rc < 0 ? err_set(rc, "%s: opaque whiteout in '%s': %s", c->what, *dir ? dir : "/",
                                strerror(-rc))
                      : 0;
    }
    const char *name = leaf + strlen(WH_PREFIX);
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return refuse(c, FERRY_E_UNSAFE_PATH, rel, "whiteout of no file");
    int rc = rm_at(pfd, name, 0);
    return rc < 0 ? err_set(rc, "%s: whiteout '%s': %s", c->what, rel, strerror(-rc)) : 0;
}

static int do_hardlink(struct layer_ctx *c, int pfd, const char *rel, const char *leaf,
                       const char *target_raw)
{
    char target[PATH_REL_MAX + 1];
    int rc = entry_rel(c, target_raw, target, sizeof target);
    if (rc == 1)
        return refuse(c, FERRY_E_UNSAFE_ENTRY, rel, "hard link to the root");
    if (rc < 0)
        return rc;
    const char *tleaf;
    int tfd = open_parent(c->rootfd, target, &tleaf);
    if (tfd < 0)
        return refuse(c, FERRY_E_UNSAFE_ENTRY, rel, "hard link to a file not in the image");
    struct stat st;
    if (fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode)) {
        close(tfd);
        return refuse(c, FERRY_E_UNSAFE_ENTRY, rel, "hard link to a file not in the image");
    }
    rc = linkat(tfd, tleaf, pfd, leaf, 0) < 0 ? -errno : 0;
    close(tfd);
    return rc < 0 ? err_set(rc, "%s: entry '%s': link: %s", c->what, rel, strerror(-rc)) : 0;
}

static int do_entry(struct layer_ctx *c, struct archive *a, struct archive_entry *e)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw)
        return err_set(FERRY_E_ARCHIVE, "%s: an entry without a name", c->what);
    char rel[PATH_REL_MAX + 1];
    int rc = entry_rel(c, raw, rel, sizeof rel);
    if (rc == 1)
        return 0; /* "./": the root itself keeps its own mode */
    if (rc < 0)
        return rc;
    if (++c->st->entries > c->o->max_entries)
        return err_set(FERRY_E_LIMIT, "%s: more than %llu entries in the image", c->what,
                       (unsigned long long)c->o->max_entries);
    mode_t type = archive_entry_filetype(e);
    const char *hl = archive_entry_hardlink(e);
    if (!hl && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK)) {
        c->st->devices_skipped++;
        return 0;
    }
    const char *leaf;
    char work[PATH_REL_MAX + 1];
    snprintf(work, sizeof work, "%s", rel);
    int pfd = open_parent(c->rootfd, work, &leaf);
    if (pfd < 0)
        return refuse(c, FERRY_E_UNSAFE_PATH, raw,
                      pfd == -ELOOP    ? "its folder is a symlink (this kernel has no openat2)"
                      : pfd == -ENOTDIR ? "its folder is not a folder"
                      : pfd == -ENOENT  ? "its folder is not in the rootfs (symlinks resolve inside it)"
                                        : strerror(-pfd));
    if (strncmp(leaf, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
        rc = do_whiteout(c, pfd, rel, leaf);
        close(pfd);
        return rc;
    }
    if ((rc = written_add(&c->w, rel)) < 0) {
        close(pfd);
        return rc;
    }
    /* A later layer replaces: whatever is there goes, except a folder that
     * stays a folder (its lower contents stay too). */
    struct stat old;
    int exists = fstatat(pfd, leaf, &old, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !(type == AE_IFDIR && !hl && S_ISDIR(old.st_mode)) && (rc = rm_at(pfd, leaf, 0)) < 0) {
        close(pfd);
        return err_set(rc, "%s: entry '%s': replacing: %s", c->what, rel, strerror(-rc));
    }
    mode_t mode = entry_mode(c, archive_entry_perm(e));
    if (hl) {
        rc = do_hardlink(c, pfd, rel, leaf, hl);
    } else if (type == AE_IFDIR) {
        if (!(exists && S_ISDIR(old.st_mode)) && mkdirat(pfd, leaf, 0700) < 0)
            rc = -errno;
        int fd = rc == 0 ? openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (rc == 0 && fd < 0)
            rc = -errno;
        if (rc == 0)
            rc = set_owner_mode(fd, e, mode);
        if (fd >= 0)
            close(fd);
    } else if (type == AE_IFREG) {
        int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = -errno;
        } else {
            rc = write_data(c, a, fd, rel);
            la_int64_t size = archive_entry_size(e);
            if (rc == 0 && size > 0 && ftruncate(fd, (off_t)size) < 0)
                rc = -errno;
            if (rc == 0)
                rc = set_owner_mode(fd, e, mode);
            close(fd);
            if (rc < 0 && rc > FERRY_E_BASE && !err_detail()[0])
                err_set(rc, "%s: entry '%s': %s", c->what, rel, strerror(-rc));
            close(pfd);
            return rc;
        }
    } else if (type == AE_IFLNK) {
        const char *to = archive_entry_symlink(e);
        /* Any target is fine: it is only ever resolved inside the rootfs
         * (here by openat2, at run time by the container's root). */
        if (!to || !*to)
            rc = FERRY_E_UNSAFE_ENTRY;
        else if (symlinkat(to, pfd, leaf) < 0)
            rc = -errno;
        else if (geteuid() == 0 && fchownat(pfd, leaf, (uid_t)archive_entry_uid(e),
                                            (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
            rc = -errno;
        if (rc == FERRY_E_UNSAFE_ENTRY) {
            close(pfd);
            return refuse(c, rc, raw, "symlink without a target");
        }
    } else if (type == AE_IFIFO) {
        if (mknodat(pfd, leaf, S_IFIFO | (mode & 0777), 0) < 0)
            rc = -errno;
    } else {
        close(pfd);
        return refuse(c, FERRY_E_UNSAFE_ENTRY, raw, "unknown entry type");
    }
    close(pfd);
    if (rc < 0 && rc > FERRY_E_BASE)
        return err_set(rc, "%s: entry '%s': %s", c->what, rel, strerror(-rc));
    return rc;
}

int unpack_layer(int rootfd, const char *path, const char *what, const struct unpack_opts *o,
                 struct unpack_stats *st)
{
    struct archive *a = archive_read_new();
    if (!a)
        return -ENOMEM;
    archive_read_support_format_tar(a);
    archive_read_support_filter_none(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    if (archive_read_open_filename(a, path, READ_BLOCK) != ARCHIVE_OK) {
        int rc = err_set(FERRY_E_ARCHIVE, "%s: %s", what, archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    struct layer_ctx c = {.rootfd = rootfd, .what = what, .o = o, .st = st};
    int rc = 0;
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = err_set(FERRY_E_ARCHIVE, "%s: not a readable tar: %s", what, archive_error_string(a));
            break;
        }
        err_clear();
        if ((rc = do_entry(&c, a, e)) < 0)
            break;
    }
    written_free(&c.w);
    archive_read_free(a);
    return rc;
}

/* ---- the whole image ----------------------------------------------------------- */

static char *marker_text(const struct unpack_layer *layers, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(layers[i].digest) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(s, layers[i].digest);
        strcat(s, "\n");
    }
    return s;
}

static int marker_matches(const char *dest, const char *want)
{
    char path[4200];
    snprintf(path, sizeof path, "%s" UNPACK_MARKER, dest);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t wl = strlen(want);
    char *buf = malloc(wl + 2);
    ssize_t n = buf ? read(fd, buf, wl + 1) : -1;
    close(fd);
    int ok = n == (ssize_t)wl && memcmp(buf, want, wl) == 0;
    free(buf);
    return ok;
}

int unpack_rootfs(const char *dest, const struct unpack_layer *layers, size_t n,
                  const struct unpack_opts *o, struct unpack_stats *st)
{
    memset(st, 0, sizeof *st);
    char *want = marker_text(layers, n);
    if (!want)
        return -ENOMEM;
    if (marker_matches(dest, want)) {
        free(want);
        return 1;
    }
    int rc = 0;
    /* Every layer is checked before any is unpacked. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = unpack_check_digest(layers[i].path, layers[i].digest)) < 0) {
            char d[900];
            snprintf(d, sizeof d, "%s", err_detail());
            rc = err_set(rc, "layer %zu: %s", i + 1, d);
        }
    char partial[4200];
    snprintf(partial, sizeof partial, "%s.partial", dest);
    if (rc == 0 && (rc = unpack_rm_rf(partial)) < 0)
        rc = err_set(rc, "%s: %s", partial, strerror(-rc));
    if (rc == 0 && mkdir(partial, 0755) < 0)
        rc = err_set(-errno, "%s: %s", partial, strerror(errno));
    int rootfd = rc == 0 ? open(partial, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (rc == 0 && rootfd < 0)
        rc = err_set(-errno, "%s: %s", partial, strerror(errno));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char what[128];
        snprintf(what, sizeof what, "layer %zu (%.19s)", i + 1, layers[i].digest);
        rc = unpack_layer(rootfd, layers[i].path, what, o, st);
    }
    if (rootfd >= 0)
        close(rootfd);
    char marker[4300];
    snprintf(marker, sizeof marker, "%s" UNPACK_MARKER, dest);
    if (rc == 0 && unlink(marker) < 0 && errno != ENOENT)
        rc = err_set(-errno, "%s: %s", marker, strerror(errno));
    if (rc == 0 && (rc = unpack_rm_rf(dest)) < 0)
        rc = err_set(rc, "%s: %s", dest, strerror(-rc));
    if (rc == 0 && rename(partial, dest) < 0)
        rc = err_set(-errno, "%s: %s", dest, strerror(errno));
    if (rc == 0) {
        /* Written last: without it, the next start unpacks again. */
        int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        size_t wl = strlen(want);
        if (fd < 0 || write(fd, want, wl) != (ssize_t)wl || fsync(fd) < 0)
            rc = err_set(-EIO, "%s: cannot write the marker", marker);
        if (fd >= 0)
            close(fd);
    }
    if (rc < 0) {
        char d[1024];
        snprintf(d, sizeof d, "%s", err_detail());
        unpack_rm_rf(partial);
        unpack_rm_rf(dest); /* no marker: never used */
        err_set(rc, "%s", d);
    }
    free(want);
    return rc;
}
