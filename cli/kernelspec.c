/* ferry kernelspec install NAME@VERSION --to SELECTOR [--display-name TEXT]
 * [--name KERNEL] [--idle D] [--dir JUPYTER_DATA_DIR]: a Jupyter kernel
 * spec whose kernel runs on a ferry host. kernel.json names the ferry
 * kernel provisioner (python/ferry/provisioner.py, entry point
 * "ferry-provisioner" in jupyter_client.kernel_provisioners) and the
 * target; the provisioner starts, interrupts, restarts and stops the
 * kernel through `ferry kernel`. docs/notebooks.md ("Jupyter"). */
#include "cli.h"
#include "error.h"
#include "fsutil.h"
#include "numparse.h"
#include "selector.h"
#include "spec.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROVISIONER_NAME "ferry-provisioner"

/* Jupyter's own rule for kernel names: [a-zA-Z0-9._-], compared lowercased. */
static int kernel_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-'))
            return 0;
    return 1;
}

/* Where jupyter_core looks on Linux: $JUPYTER_DATA_DIR, else
 * $XDG_DATA_HOME/jupyter, else ~/.local/share/jupyter. */
static int data_dir(const char *given, char *out, size_t cap)
{
    const char *j = getenv("JUPYTER_DATA_DIR"), *x = getenv("XDG_DATA_HOME"),
               *h = getenv("HOME");
    int n;
    if (given && *given)
        n = snprintf(out, cap, "%s", given);
    else if (j && *j)
        n = snprintf(out, cap, "%s", j);
    else if (x && *x)
        n = snprintf(out, cap, "%s/jupyter", x);
    else if (h && *h)
        n = snprintf(out, cap, "%s/.local/share/jupyter", h);
    else
        return err_set(FERRY_E_INVALID, "kernelspec install: no --dir, JUPYTER_DATA_DIR or HOME");
    return n < 0 || (size_t)n >= cap ? err_set(FERRY_E_INVALID, "kernelspec install: the path is too long") : 0;
}

static int install(struct cli_opts *o, const char *ref, const char *display, const char *kname,
                   const char *idle)
{
    char name[128];
    const char *at = strchr(ref, '@');
    if (!at || (size_t)(at - ref) >= sizeof name)
        return cli_usage("kernelspec", "expected NAME@VERSION");
    snprintf(name, sizeof name, "%.*s", (int)(at - ref), ref);
    const char *version = at + 1;
    if (!spec_name_ok(name) || !*version)
        return cli_fail(err_set(FERRY_E_INVALID, "kernelspec install: '%s' is not NAME@VERSION", ref));
    if (!o->to)
        return cli_usage("kernelspec", "install needs --to SELECTOR");
    struct label_set sel;
    char selector[2048];
    int rc = labels_parse(o->to, &sel);
    if (rc < 0)
        return cli_fail(rc);
    labels_format(&sel, selector, sizeof selector);
    uint64_t idle_ms = 0;
    if (idle && (rc = num_parse_duration_ms("--idle", idle, 1000, 0, 30ull * 86400 * 1000, &idle_ms)) < 0)
        return cli_fail(rc);
    /* Default name: ferry-NAME-VERSION, lowercased, other bytes as '-'. */
    char kn[80];
    if (kname) {
        if (!kernel_name_ok(kname))
            return cli_fail(err_set(FERRY_E_INVALID,
                                    "kernelspec install: --name '%s': a kernel name is 1 to 64 of "
                                    "a-z, 0-9, '.', '_', '-'",
                                    kname));
        snprintf(kn, sizeof kn, "%s", kname);
    } else {
        snprintf(kn, sizeof kn, "ferry-%.32s-%.32s", name, version);
        for (char *p = kn; *p; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
            else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                       *p == '_' || *p == '-'))
                *p = '-';
        }
    }
    char dir[PATH_MAX];
    if ((rc = data_dir(o->dir, dir, sizeof dir - 96)) < 0)
        return cli_fail(rc);
    char kdir[PATH_MAX + 96];
    snprintf(kdir, sizeof kdir, "%s/kernels/%s", dir, kn);
    char disp[2400];
    snprintf(disp, sizeof disp, "%s", display ? display : "");
    if (!display)
        snprintf(disp, sizeof disp, "%s on %s (ferry)", ref, selector);
    /* What the provisioner needs to run the same CLI against the same
     * registry with the same key, whatever the Jupyter server's own
     * environment says: recorded when known here. */
    char keyabs[PATH_MAX];
    if (o->key && *o->key && !realpath(o->key, keyabs))
        return cli_fail(err_set(FERRY_E_INVALID, "kernelspec install: key %s: %s", o->key,
                                strerror(errno)));
    json_t *cfg = json_pack("{s:s, s:s}", "ref", ref, "to", selector);
    char exe[PATH_MAX];
    ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (en > 0) {
        exe[en] = '\0';
        json_object_set_new(cfg, "cli", json_string(exe));
    }
    if (o->registry && *o->registry)
        json_object_set_new(cfg, "registry", json_string(o->registry));
    if (o->key && *o->key)
        json_object_set_new(cfg, "key", json_string(keyabs));
    if (idle)
        json_object_set_new(cfg, "idle", json_string(idle));
    json_t *spec = json_pack(
        "{s:[s,s,s,s,s,s], s:s, s:s, s:s, s:{s:{s:s, s:o}}}", "argv", "ferry", "kernel", "start",
        ref, "--to", selector, "display_name", disp, "language", "python", "interrupt_mode",
        "signal", "metadata", "kernel_provisioner", "provisioner_name", PROVISIONER_NAME, "config",
        cfg);
    char *text = spec ? json_dumps(spec, JSON_INDENT(1)) : NULL;
    json_decref(spec);
    if (!text)
        return cli_fail(-ENOMEM);
    if ((rc = fs_mkdir_p(kdir, 0755)) < 0) {
        free(text);
        return cli_fail(err_set(FERRY_E_INVALID, "kernelspec install: %s: %s", kdir,
                                rc > FERRY_E_BASE ? strerror(-rc) : err_message(rc)));
    }
    char file[sizeof kdir + 16];
    snprintf(file, sizeof file, "%s/kernel.json", kdir);
    rc = fs_write_file_atomic(file, text, strlen(text), 0644);
    free(text);
    if (rc < 0)
        return cli_fail(err_set(FERRY_E_INVALID, "kernelspec install: %s: %s", file,
                                rc > FERRY_E_BASE ? strerror(-rc) : err_message(rc)));
    printf("installed kernel spec %s in %s (%s on %s)\n", kn, kdir, ref, selector);
    return 0;
}

int cli_kernelspec(int argc, char **argv)
{
    /* This verb's own options, taken out before the shared ones. */
    const char *display = NULL, *kname = NULL, *idle = NULL;
    int kept = 0;
    for (int i = 0; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--display-name") == 0 ? &display
                           : strcmp(argv[i], "--name") == 0       ? &kname
                           : strcmp(argv[i], "--idle") == 0       ? &idle
                                                                  : NULL;
        if (dst && i + 1 < argc) {
            *dst = argv[++i];
            continue;
        }
        if (dst)
            return cli_usage("kernelspec", "an option without its value");
        argv[kept++] = argv[i];
    }
    argc = kept;
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_TO, OPT_DIR, 0};
    int rc = cli_parse_opts("kernelspec", argc, argv, &o, allowed);
    if (rc)
        return rc;
    int n = argc - optind;
    if (n == 2 && strcmp(argv[optind], "install") == 0)
        return install(&o, argv[optind + 1], display, kname, idle);
    return cli_usage("kernelspec", "expected install NAME@VERSION --to SELECTOR");
}
