/* Small filesystem helpers shared by the store, materialization and keys. */
#ifndef FERRY_LIB_FSUTIL_H
#define FERRY_LIB_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int fs_write_all(int fd, const void *data, size_t len);
int fs_pwrite_all(int fd, const void *data, size_t len, uint64_t offset);
/* fsync a directory so a rename inside it is durable. */
int fs_fsync_dir(const char *dir);
/* fsync the directory that contains path. */
int fs_fsync_parent(const char *path);
int fs_mkdir_p(const char *path, mode_t mode);
/* Remove a tree without following symlinks. Missing path is success. */
int fs_rm_rf(const char *path);
struct stat;
/* Open for reading a file a user named (a key, a trust list, a certificate,
 * ferry.yaml): it must be a regular file, checked before and after an open
 * with O_NONBLOCK, so a FIFO or a device is refused at once, with the detail
 * "PATH: not a regular file (a FIFO)" and FERRY_E_INVALID. Returns the fd
 * (blocking again) or a negative code; st (may be NULL) gets its stat. */
int fs_open_regular(const char *path, struct stat *st);
/* Read up to cap bytes from fd into buf; *len gets the count. */
int fs_read_fd(int fd, const char *path, size_t cap, uint8_t *buf, size_t *len);
/* Read a whole regular file of at most cap bytes (through fs_open_regular);
 * *buf is malloc'd and NUL-terminated. */
int fs_read_file(const char *path, size_t cap, uint8_t **buf, size_t *len);
/* Write tmp, fsync, rename over path, fsync the directory. */
int fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* dirname/basename into caller buffers (no modification of path). */
void fs_split(const char *path, char *dir, size_t dcap, char *base, size_t bcap);

#endif
