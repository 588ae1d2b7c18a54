/* The dashboard page: GET / and GET /assets/NAME from one directory of
 * static files (docs/dashboard.md). The directory is found once at start:
 * --http-assets DIR, else "web" beside the ferry-registry binary (the
 * build tree), else ../share/ferry/web from it (the installed layout).
 * Names are one path component of [A-Za-z0-9._-] with a known extension,
 * opened relative to the directory without following symlinks, so nothing
 * outside it can be named. */
#ifndef FERRY_REGISTRY_HTTP_PAGE_H
#define FERRY_REGISTRY_HTTP_PAGE_H

#include <stddef.h>

struct http_page;

/* Largest asset served (the vendored chart library is ~50 KiB). */
#define HTTP_PAGE_MAX_ASSET (4u << 20)

/* dir: --http-assets, or NULL to look beside the binary. With dir, a
 * directory without index.html is an error (one line); without it, a page
 * that cannot be found is not: *out is still made and / answers 404 with
 * where it looked, so the JSON API keeps serving. */
int http_page_open(const char *dir, struct http_page **out);
/* The directory in use, or NULL when none was found. */
const char *http_page_dir(const struct http_page *p);
void http_page_close(struct http_page *p);

/* The content type for an asset name, or NULL when its extension is not
 * one the page uses. */
const char *http_page_content_type(const char *name);
/* 0 when name is a single safe path component an asset may have. */
int http_page_name_ok(const char *name);
/* The whole of asset name, malloc'd into *body; FERRY_E_NOTFOUND for a
 * name that is not safe, not there, not a regular file or a symlink. */
int http_page_read(const struct http_page *p, const char *name, char **body, size_t *len,
                   const char **content_type);


#endif
