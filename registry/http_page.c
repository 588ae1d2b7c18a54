/* The dashboard page and its static assets (http_page.h). */
#include "http_page.h"
#include "error.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct http_page {
    int dirfd;              /* -1 when no directory was found */
    char dir[PATH_MAX];
    char looked[2 * PATH_MAX + 64]; /* where it looked, for the 404 */
};

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

const char *http_page_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return NULL;
    for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
        if (strcmp(dot, content_types[i].ext) == 0)
            return content_types[i].type;
    return NULL;
}

int http_page_name_ok(const char *name)
{
    size_t n = strlen(name);
    /* A leading dot would allow "." and "..", and hidden files are not
     * assets either. */
    if (n == 0 || n > 100 || name[0] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return -1;
    }
    if (strstr(name, ".."))
        return -1;
    return http_page_content_type(name) ? 0 : -1;
}

/* dir has index.html as a regular file: 0, else -1. */
static int has_index(const char *dir)
{
    char p[PATH_MAX + 16];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/index.html", dir) >= (int)sizeof p)
        return -1;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? 0 : -1;
}

static int use_dir(struct http_page *p, const char *dir)
{
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return -errno;
    int fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    p->dirfd = fd;
    snprintf(p->dir, sizeof p->dir, "%s", real);
    return 0;
}

int http_page_open(const char *dir, struct http_page **out)
{
    *out = NULL;
    struct http_page *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->dirfd = -1;
    if (dir) {
        int rc = has_index(dir) == 0 ? use_dir(p, dir) : FERRY_E_NOTFOUND;
        if (rc < 0) {
            free(p);
            return err_set(FERRY_E_INVALID, "--http-assets %s: no index.html there (the page's "
                           "assets are installed under share/ferry/web)", dir);
        }
        *out = p;
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        char build[PATH_MAX + 8], installed[PATH_MAX + 24];
        snprintf(build, sizeof build, "%s/web", exe);
        snprintf(installed, sizeof installed, "%s/../share/ferry/web", exe);
        snprintf(p->looked, sizeof p->looked, "%s and %s", build, installed);
        if (has_index(build) == 0)
            (void)use_dir(p, build);
        else if (has_index(installed) == 0)
            (void)use_dir(p, installed);
    } else {
        snprintf(p->looked, sizeof p->looked, "beside the binary (/proc/self/exe unreadable)");
    }
    *out = p;
    return 0;
}

const char *http_page_dir(const struct http_page *p) { return p && p->dirfd >= 0 ? p->dir : NULL; }

void http_page_close(struct http_page *p)
{
    if (!p)
        return;
    if (p->dirfd >= 0)
        close(p->dirfd);
    free(p);
}

int http_page_read(const struct http_page *p, const char *name, char **body, size_t *len,
                   const char **content_type)
{
    *body = NULL;
    *len = 0;
    if (http_page_name_ok(name) < 0)
        return err_set(FERRY_E_NOTFOUND, "no asset named '%.100s'", name);
    if (!p || p->dirfd < 0)
        return err_set(FERRY_E_NOTFOUND,
                       "the page's assets were not found (looked in %s); start ferry-registry "
                       "with --http-assets DIR", p ? p->looked : "nowhere");
    /* O_NOFOLLOW: a symlink planted in the directory names nothing. */
    int fd = openat(p->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return err_set(FERRY_E_NOTFOUND, "no asset named '%.100s'", name);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(FERRY_E_NOTFOUND, "no asset named '%.100s'", name);
    }
    if ((uint64_t)st.st_size > HTTP_PAGE_MAX_ASSET) {
        close(fd);
        return err_set(FERRY_E_LIMIT, "asset '%.100s' is over %u bytes", name,
                       HTTP_PAGE_MAX_ASSET);
    }
    size_t want = (size_t)st.st_size;
    char *buf = malloc(want + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *body = buf;
    *len = got;
    *content_type = http_page_content_type(name);
    return 0;
}

static int page_answer(const struct http_call *c, const char *name, struct http_reply *out)
{
    char *body = NULL;
    size_t len = 0;
    const char *ctype = NULL;
    int rc = http_page_read(http_server_page(c->srv), name, &body, &len, &ctype);
    if (rc < 0)
        return rc;
    out->status = 200;
    out->content_type = ctype;
    out->body = body;
    out->len = len;
    return 0;
}

static int route_index(const struct http_call *c, struct http_reply *out)
{
    return page_answer(c, "index.html", out);
}

static int route_asset(const struct http_call *c, struct http_reply *out)
{
    return page_answer(c, c->tail, out);
}

const struct http_route http_page_routes[] = {
    {"GET", "/", 0, route_index},
    {"GET", "/index.html", 0, route_index},
    {"GET", "/assets/", 1, route_asset},
    {NULL, NULL, 0, NULL},
};
