#include "runlog.h"
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int runlog_open(const char *dir, const char *name)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/.ferry", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void runlog_cap(const char *dir, const char *name, uint64_t cap)
{
    char path[4300], old[4400];
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    struct stat st;
    if (stat(path, &st) < 0 || (uint64_t)st.st_size <= cap)
        return;
    /* Copy then truncate: the workload keeps its O_APPEND descriptor and
     * goes on writing at the new end. */
    snprintf(old, sizeof old, "%s.1", path);
    int in = open(path, O_RDWR | O_CLOEXEC), out = open(old, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in >= 0 && out >= 0) {
        off_t off = 0;
        while (off < st.st_size) {
            ssize_t n = copy_file_range(in, &off, out, NULL, (size_t)(st.st_size - off), 0);
            if (n <= 0)
                break;
        }
        if (ftruncate(in, 0) < 0)
            alog(FERRY_LOG_WARN, "%s: cannot truncate: %s", path, strerror(errno));
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
}

int runlog_last_line(const char *dir, const char *name, char *out, size_t outsz)
{
    char path[4300], buf[512];
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Only the tail is read: the log may be large. */
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return -ENOENT;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    if (!*line)
        return -ENOENT;
    snprintf(out, outsz, "%s", line);
    return 0;
}
