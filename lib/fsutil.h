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
/* Read a whole file of at most cap bytes; *buf is malloc'd. */
int fs_read_file(const char *path, size_t cap, uint8_t **buf, size_t *len);
/* Write tmp, fsync, rename over path, fsync the directory. */
int fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* dirname/basename into caller buffers (no modification of path). */
void fs_split(const char *path, char *dir, size_t dcap, char *base, size_t bcap);

#endif
