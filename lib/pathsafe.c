#include "pathsafe.h"
#include "error.h"

#include <string.h>

static int refuse(const char *rel, const char *why)
{
    /* The path is hostile: keep the detail one line by showing control
     * bytes as '?'. */
    char shown[201];
    size_t i = 0;
    for (; i < sizeof shown - 1 && rel[i]; i++) {
        unsigned char c = (unsigned char)rel[i];
        shown[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    shown[i] = '\0';
    return err_set(FERRY_E_UNSAFE_PATH, "path '%s': %s", shown, why);
}

int path_check(const char *rel)
{
    size_t len = strlen(rel);
    if (len == 0)
        return refuse(rel, "empty");
    if (len > PATH_REL_MAX)
        return refuse(rel, "too long");
    if (rel[0] == '/')
        return refuse(rel, "absolute path");
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return refuse(rel, "control character");
        if (*p == '\\')
            return refuse(rel, "backslash");
    }
    int depth = 0;
    const char *start = rel;
    for (;;) {
        const char *slash = strchr(start, '/');
        size_t n = slash ? (size_t)(slash - start) : strlen(start);
        if (n == 0)
            return refuse(rel, "empty component");
        if (n > PATH_COMPONENT_MAX)
            return refuse(rel, "component too long");
        if ((n == 1 && start[0] == '.') || (n == 2 && start[0] == '.' && start[1] == '.'))
            return refuse(rel, "'.' or '..' component");
        if (++depth > PATH_DEPTH_MAX)
            return refuse(rel, "too deep");
        if (!slash)
            break;
        start = slash + 1;
    }
    return 0;
}

/* 1 when the first component of rel is exactly name. */
static int first_component_is(const char *rel, const char *name)
{
    size_t n = strlen(name);
    return strncmp(rel, name, n) == 0 && (rel[n] == '/' || rel[n] == '\0');
}

int path_check_workload(const char *rel, const char *spec_file)
{
    int rc = path_check(rel);
    if (rc < 0)
        return rc;
    if (first_component_is(rel, PATH_AGENT_DIR))
        return refuse(rel, "inside the agent's own folder " PATH_AGENT_DIR "/");
    if (spec_file && first_component_is(rel, spec_file) && rel[strlen(spec_file)] == '/')
        return refuse(rel, "collides with the spec file");
    return 0;
}
