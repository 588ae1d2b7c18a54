/* A background file writer: the thread that verifies (hashes) bytes hands
 * them here and goes on hashing while this thread writes them, so
 * verification and disk writes overlap on two cores. */
#ifndef FERRY_LIB_FILEWRITER_H
#define FERRY_LIB_FILEWRITER_H

#include <stddef.h>
#include <stdint.h>

struct file_writer;

typedef void (*file_writer_release_fn)(void *owner);

int file_writer_new(struct file_writer **out);
/* Queue a write of data[0..len) at off in fd; blocks while the queue is
 * full. release(owner) is called once the bytes are written (or dropped
 * after an error), on the writer thread. Takes ownership of owner even when
 * it fails. With direct, fd was opened O_DIRECT and off/len must pass
 * file_writer_direct_ok: the bytes go through an aligned bounce buffer. */
int file_writer_submit(struct file_writer *w, int fd, int direct, uint64_t off,
                       const uint8_t *data, size_t len, void *owner,
                       file_writer_release_fn release);
/* Whether a write at off of len bytes can use an O_DIRECT descriptor. */
int file_writer_direct_ok(uint64_t off, size_t len);
/* Wait until every queued write is done; returns the first write error
 * (-errno) since the last flush, and clears it. */
int file_writer_flush(struct file_writer *w);
void file_writer_free(struct file_writer *w);

#endif
