/* The oci: section of ferry.yaml (runtime oci). Only what the author writes
 * is parsed here; the layers, the config and their digests are filled in by
 * publish from the image itself (lib/ociimage.c), so a spec parsed on a host
 * from the signed ferry.yaml has the same keys but no layers: the host reads
 * those from the signed manifest's Spec. */
#include "spec_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const networks[] = {"host", "none", NULL};

static const char *rule_image(const char *s)
{
    if (!*s)
        return "must not be empty";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return "must not contain control characters";
    return NULL;
}

static const char *rule_env_name(const char *s)
{
    bool ok = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_';
    for (size_t i = 1; ok && s[i]; i++)
        ok = (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
             (s[i] >= '0' && s[i] <= '9');
    return ok ? NULL : "variable names must match [A-Za-z_][A-Za-z0-9_]*";
}

/* The working directory inside the container: absolute, as the runtime
 * spec demands. */
static const char *rule_workdir(const char *s)
{
    if (s[0] != '/')
        return "must be an absolute path inside the container (starting with '/')";
    if (strlen(s) > 1024)
        return "is longer than 1024 characters";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* As an image config's User: a name or uid, optionally ":group" or ":gid". */
static const char *rule_user(const char *s)
{
    size_t n = strlen(s), colons = 0;
    bool ok = n >= 1 && n <= 65 && s[0] != ':' && s[n - 1] != ':';
    for (size_t i = 0; ok && i < n; i++) {
        char ch = s[i];
        colons += ch == ':';
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-' || ch == ':';
    }
    return ok && colons <= 1 ? NULL
                             : "expected USER, UID, USER:GROUP or UID:GID (A-Z a-z 0-9 . _ -)";
}

static void oci_init(void *m) { ferry__oci_spec__init(m); }

static int oci_finish(const struct ctx *c, const yaml_node_t *map, const char *path, void *msg)
{
    (void)c, (void)map, (void)path;
    Ferry__OciSpec *o = msg;
    if (!o->network[0]) { /* unset: the default */
        char *d = strdup("host");
        if (!d)
            return err_set(-ENOMEM, "out of memory reading ferry.yaml");
        o->network = d;
    }
    return 0;
}

static const struct field oci_fields[] = {
    {.key = "image", .type = F_STRING, .required = true, .offset = MEMBER(Ferry__OciSpec, image),
     .rule = rule_image},
    {.key = "tag", .type = F_STRING, .offset = MEMBER(Ferry__OciSpec, tag), .rule = rule_image},
    {.key = "command", .type = F_STRLIST, .nonempty = true,
     .offset = MEMBER(Ferry__OciSpec, command), .count_offset = COUNT(Ferry__OciSpec, command)},
    {.key = "env", .type = F_STRMAP, .offset = MEMBER(Ferry__OciSpec, env),
     .count_offset = COUNT(Ferry__OciSpec, env), .rule = rule_env_name},
    {.key = "workdir", .type = F_STRING, .offset = MEMBER(Ferry__OciSpec, workdir),
     .rule = rule_workdir},
    {.key = "user", .type = F_STRING, .offset = MEMBER(Ferry__OciSpec, user), .rule = rule_user},
    {.key = "ports", .type = F_STRLIST, .offset = MEMBER(Ferry__OciSpec, ports),
     .count_offset = COUNT(Ferry__OciSpec, ports)},
    {.key = "network", .type = F_CHOICE, .offset = MEMBER(Ferry__OciSpec, network),
     .choices = networks},
    {.key = "readonly_rootfs", .type = F_BOOL,
     .offset = MEMBER(Ferry__OciSpec, readonly_rootfs)},
};
FITS(oci_fields);

const struct schema spec_oci_schema = {FIELDS(oci_fields), sizeof(Ferry__OciSpec), oci_init,
                                       oci_finish};

/* runtime oci runs an image, so it names one; the section means nothing to
 * any other runtime. */
int spec_oci_rules(const struct ctx *c, const yaml_node_t *root, const Ferry__Spec *s)
{
    bool oci = strcmp(s->runtime, "oci") == 0;
    if (oci && !s->oci)
        return spec_fail(c, root, "oci", "required key is missing (runtime oci needs an oci "
                                         "section naming the image)");
    if (!oci && s->oci)
        return spec_fail(c, spec_value_of(c, root, "oci"), "oci",
                         "a section for runtime oci, but this is runtime %s", s->runtime);
    return 0;
}
