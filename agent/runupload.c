/* Notebook run reports (runupload.h). */
#include "runupload.h"
#include "alog.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "hash.h"
#include "runrec.h"
#include "spec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX (64u << 10) /* bytes of one STAMP.json */
#define REFUSED_RETRY_S 60     /* a refused report is sent again after this */

struct runupload {
    char url[512], host[72], dir[4096];
    struct key_secret key;
    uint32_t interval_ms;
    uint64_t last_sent_ms;
    struct client c;
    int open;
    char last_refusal[600]; /* logged once until it changes */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    pthread_t thread;
    int started;
};

/* The whole file when it is a regular file of at most cap bytes. */
static int read_file(const char *path, size_t cap, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > cap) {
        close(fd);
        *len = (size_t)st.st_size;
        return FERRY_E_LIMIT;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

static int write_marker(const char *path, const char *text)
{
    char tmp[4900];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    int rc = write(fd, text, n) == (ssize_t)n ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static uint64_t fresh_ms(uint64_t *last)
{
    uint64_t now = clock_unix_ms();
    if (now <= *last)
        now = *last + 1;
    *last = now;
    return now;
}

/* Sign and send one report. */
static int send_report(struct runupload *u, Ferry__Wire__RunReportBody *b)
{
    if (!u->open) {
        int rc = client_open(&u->c, u->url);
        if (rc < 0)
            return rc;
        u->open = 1;
        u->c.timeout_ms = 15000;
    }
    b->sent_ms = fresh_ms(&u->last_sent_ms);
    size_t n = ferry__wire__run_report_body__get_packed_size(b);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    ferry__wire__run_report_body__pack(b, buf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&u->key, buf, n, sig);
    Ferry__Wire__Request req;
    Ferry__Wire__RunReport rep;
    ferry__wire__request__init(&req);
    ferry__wire__run_report__init(&rep);
    rep.body = (ProtobufCBinaryData){n, buf};
    rep.signature = (ProtobufCBinaryData){sizeof sig, sig};
    req.body_case = FERRY__WIRE__REQUEST__BODY_RUN_REPORT;
    req.run_report = &rep;
    Ferry__Wire__Response *r = NULL;
    int rc = client_call(&u->c, &req, &r);
    client_response_free(r);
    free(buf);
    if (rc == FERRY_E_TRANSPORT) {
        client_close(&u->c);
        u->open = 0;
    }
    return rc;
}

/* One run: its record at base.json, its notebook at base.ipynb. */
static int one_run(struct runupload *u, const char *name, const char *version, const char *base)
{
    char path[4800], marker[4800];
    if (snprintf(path, sizeof path, "%s.json", base) >= (int)sizeof path ||
        snprintf(marker, sizeof marker, "%s.sent", base) >= (int)sizeof marker)
        return 0;
    uint8_t *text = NULL, *sent = NULL;
    size_t len = 0, slen = 0;
    /* The marker names the version of the record it answers (inode, change
     * time and size: the plugin and the runner replace the record by a
     * rename, so each version is a new inode), and the folder is looked at
     * every second: a run reported already costs two stats and a tiny read. */
    struct stat rs, ms;
    if (stat(path, &rs) < 0 || !S_ISREG(rs.st_mode))
        return 0;
    char key[96];
    snprintf(key, sizeof key, "%llu.%lld.%ld.%lld", (unsigned long long)rs.st_ino,
             (long long)rs.st_mtim.tv_sec, (long)rs.st_mtim.tv_nsec, (long long)rs.st_size);
    if (stat(marker, &ms) == 0 && read_file(marker, 256, &sent, &slen) == 0) {
        char *sp = strchr((char *)sent, ' ');
        int refused = strncmp((char *)sent, "refused ", 8) == 0;
        if (refused)
            sp = strchr(sp + 1, ' ');
        int same = sp && strcmp(sp + 1, key) == 0;
        free(sent);
        /* A refusal is tried again only every REFUSED_RETRY_S (a clock put
         * right, an artifact published again), not every second. */
        if (same && (!refused || time(NULL) - ms.st_mtim.tv_sec < REFUSED_RETRY_S))
            return 0;
    }
    if (read_file(path, RECORD_MAX, &text, &len) < 0)
        return 0; /* gone meanwhile */
    json_t *j = json_loadb((const char *)text, len, 0, NULL);
    free(text);
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *id = json_string_value(json_object_get(j, "id"));
    if (!runrec_id_ok(id) || !runrec_status_ok(status)) {
        json_decref(j);
        return 0; /* a record from before runs had ids, or not one at all */
    }
    Ferry__Wire__RunRecord run;
    Ferry__Wire__RunReportBody b;
    ferry__wire__run_record__init(&run);
    ferry__wire__run_report_body__init(&b);
    char error[RUN_ERROR_MAX + 1], note[RUN_NOTE_MAX + 1] = "";
    /* One line, bounded, whatever the runner wrote. */
    snprintf(error, sizeof error, "%s", json_string_value(json_object_get(j, "error")) ?: "");
    for (char *p = error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    run.id = (char *)id;
    run.name = (char *)name;
    run.version = (char *)version;
    run.host = u->host;
    run.status = (char *)status;
    json_int_t started = json_integer_value(json_object_get(j, "started_ms"));
    json_int_t duration = json_integer_value(json_object_get(j, "duration_ms"));
    run.started_ms = started > 0 ? (uint64_t)started : 0;
    run.duration_ms = duration > 0 ? (uint64_t)duration : 0;
    run.error = error;
    run.note = note;
    uint8_t *nb = NULL;
    size_t nblen = 0;
    struct digest d;
    if (strcmp(status, "running") != 0) {
        int rc = snprintf(path, sizeof path, "%s.ipynb", base) >= (int)sizeof path
                     ? -ENAMETOOLONG
                     : read_file(path, RUN_NOTEBOOK_MAX, &nb, &nblen);
        if (rc == FERRY_E_LIMIT)
            snprintf(note, sizeof note,
                     "the executed notebook is %zu bytes, more than the %u a report carries; it "
                     "stays on host %s",
                     nblen, RUN_NOTEBOOK_MAX, u->host);
        else if (rc < 0)
            snprintf(note, sizeof note, "the run left no executed notebook");
        if (rc == 0) {
            digest_of(nb, nblen, &d);
            run.notebook_digest = (ProtobufCBinaryData){DIGEST_LEN, d.b};
            run.notebook_size = nblen;
            b.notebook = (ProtobufCBinaryData){nblen, nb};
        }
    }
    b.host = u->host;
    b.run = &run;
    int rc = send_report(u, &b);
    free(nb);
    if (rc == 0) {
        alog(FERRY_LOG_DEBUG, "run %s of %s@%s reported %s", id, name, version, status);
        char text1[160];
        snprintf(text1, sizeof text1, "%s %s", status, key);
        write_marker(marker, text1);
        u->last_refusal[0] = '\0';
    } else if (rc != FERRY_E_TRANSPORT) {
        /* Refused: say why once. */
        const char *why = err_message(rc);
        if (strcmp(why, u->last_refusal) != 0) {
            alog(FERRY_LOG_WARN, "registry refused the report of run %s (%s@%s): %s", id, name,
                 version, why);
            snprintf(u->last_refusal, sizeof u->last_refusal, "%s", why);
        }
        /* A refusal of the report itself will not change at once. */
        if (rc == FERRY_E_INVALID || rc == FERRY_E_LIMIT || rc == FERRY_E_EXISTS ||
            rc == FERRY_E_DIGEST || rc == FERRY_E_NOTFOUND || rc == FERRY_E_SIGNATURE) {
            char text2[160];
            snprintf(text2, sizeof text2, "refused %s %s", status, key);
            write_marker(marker, text2);
        }
    }
    json_decref(j);
    return rc;
}

/* Every NAME/VERSION/.ferry/runs/STAMP.json under the workloads folder. */
int runupload_scan(struct runupload *u)
{
    int first = 0;
    DIR *top = opendir(u->dir);
    if (!top)
        return 0;
    struct dirent *n, *v, *f;
    while ((n = readdir(top)) != NULL) {
        if (!spec_name_ok(n->d_name))
            continue;
        char ndir[4400];
        if (snprintf(ndir, sizeof ndir, "%s/%s", u->dir, n->d_name) >= (int)sizeof ndir)
            continue;
        DIR *vd = opendir(ndir);
        if (!vd)
            continue;
        while ((v = readdir(vd)) != NULL) {
            if (v->d_name[0] == '.' || !spec_version_ok(v->d_name))
                continue;
            char rdir[4700];
            if (snprintf(rdir, sizeof rdir, "%s/%s/.ferry/runs", ndir, v->d_name) >=
                (int)sizeof rdir)
                continue;
            DIR *rd = opendir(rdir);
            if (!rd)
                continue;
            while ((f = readdir(rd)) != NULL) {
                size_t len = strlen(f->d_name);
                if (len <= 5 || f->d_name[0] == '.' || strcmp(f->d_name + len - 5, ".json") != 0)
                    continue;
                char base[4790];
                if (snprintf(base, sizeof base, "%s/%.*s", rdir, (int)(len - 5), f->d_name) >=
                    (int)sizeof base)
                    continue;
                int rc = one_run(u, n->d_name, v->d_name, base);
                if (rc < 0 && first == 0)
                    first = rc;
                if (rc == FERRY_E_TRANSPORT)
                    break; /* the registry is away: the next pass tries again */
            }
            closedir(rd);
        }
        closedir(vd);
    }
    closedir(top);
    return first;
}

static void *upload_main(void *arg)
{
    struct runupload *u = arg;
    pthread_mutex_lock(&u->lock);
    while (!u->stopping) {
        pthread_mutex_unlock(&u->lock);
        runupload_scan(u);
        pthread_mutex_lock(&u->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += u->interval_ms / 1000;
        ts.tv_nsec += (long)(u->interval_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!u->stopping)
            pthread_cond_timedwait(&u->wake, &u->lock, &ts);
    }
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

static struct runupload *upload_new(const char *url, const char *host,
                                    const struct key_secret *host_key, const char *workloads_dir,
                                    uint32_t interval_ms)
{
    struct runupload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    snprintf(u->url, sizeof u->url, "%s", url);
    snprintf(u->host, sizeof u->host, "%s", host);
    snprintf(u->dir, sizeof u->dir, "%s", workloads_dir);
    u->key = *host_key;
    u->interval_ms = interval_ms ? interval_ms : 1000;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->wake, NULL);
    return u;
}

int runupload_start(const char *url, const char *host, const struct key_secret *host_key,
                    const char *workloads_dir, uint32_t interval_ms, struct runupload **out)
{
    struct runupload *u = upload_new(url, host, host_key, workloads_dir, interval_ms);
    if (!u)
        return -ENOMEM;
    if (pthread_create(&u->thread, NULL, upload_main, u) != 0) {
        runupload_stop(u);
        return err_set(-EAGAIN, "run reports: cannot start their thread");
    }
    u->started = 1;
    *out = u;
    return 0;
}

void runupload_stop(struct runupload *u)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->lock);
    u->stopping = 1;
    pthread_cond_broadcast(&u->wake);
    pthread_mutex_unlock(&u->lock);
    if (u->started) {
        /* A report in flight to a registry that went away ends with the
         * client's timeout: the agent does not wait that long to exit. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 3;
        if (pthread_timedjoin_np(u->thread, NULL, &ts) != 0) {
            alog(FERRY_LOG_WARN, "run reports: a report to %s is still in flight; exiting "
                                 "without waiting for it", u->url);
            return; /* u stays for the thread until the process exits */
        }
    }
    if (u->open)
        client_close(&u->c);
    key_secret_wipe(&u->key);
    pthread_cond_destroy(&u->wake);
    pthread_mutex_destroy(&u->lock);
    free(u);
}
