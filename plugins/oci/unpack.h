/* Unpacking an OCI image's layers into a root file system.
 *
 * Layers are hostile input even when they are signed: whoever built the
 * image chose every name, link and mode in them. So, as for bundles
 * (lib/bundle.c), every entry name is a checked relative path
 * (lib/pathsafe.h: no '..', no empty component, within the caps; a leading
 * "/" or "./" is dropped, as tar itself does), and every file system call is
 * made relative to a directory opened inside the root file system:
 *
 *  - parents are resolved with openat2(RESOLVE_IN_ROOT), so a symlink in an
 *    earlier layer or entry ("etc -> /etc", "x -> ../../..") is followed
 *    inside the rootfs only, never out of it; on a kernel without openat2 a
 *    parent that is a symlink is refused instead;
 *  - the last component is never followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW):
 *    an existing entry is replaced, not written through;
 *  - a hard link's target is resolved the same way, so it names a file of
 *    the rootfs or nothing (refused), never a host file;
 *  - character and block devices and sockets are skipped (counted), FIFOs
 *    are created; setuid and setgid bits are dropped unless allowed;
 *    extended attributes (file capabilities) are not restored;
 *  - OCI whiteouts: ".wh.NAME" removes NAME from the lower layers,
 *    ".wh..wh..opq" empties its directory of what lower layers put there;
 *  - caps on entries and bytes across all layers (FERRY_E_LIMIT).
 *
 * Before a byte of a layer is read as a tar, the whole file's sha256 is
 * checked against the digest the signed manifest names. */
#ifndef FERRY_PLUGINS_OCI_UNPACK_H
#define FERRY_PLUGINS_OCI_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#define UNPACK_MAX_ENTRIES_DEFAULT 1000000ull
#define UNPACK_MAX_BYTES_DEFAULT (32ull << 30)
#define UNPACK_MARKER ".unpacked" /* beside the rootfs: dest + this */

struct unpack_layer {
    const char *path;   /* the layer file (tar, tar+gzip or tar+zstd) */
    const char *digest; /* "sha256:HEX" */
};

struct unpack_opts {
    uint64_t max_entries; /* over all layers */
    uint64_t max_bytes;   /* file data over all layers */
    int allow_setid;      /* keep setuid/setgid bits */
};

struct unpack_stats {
    uint64_t entries, bytes;
    uint64_t devices_skipped, setid_dropped, whiteouts;
};

/* Built-in caps, lowered (never raised) by FERRY_OCI_MAX_ENTRIES and
 * FERRY_OCI_MAX_BYTES; FERRY_OCI_ALLOW_SETID=1 keeps setuid bits. A bad
 * value is FERRY_E_INVALID with a detail naming the variable. */
int unpack_opts_default(struct unpack_opts *o);

/* 0 when the file's sha256 is digest ("sha256:HEX", lowercase), else
 * FERRY_E_DIGEST (or a read error) with a detail naming the file. */
int unpack_check_digest(const char *path, const char *digest);

/* One layer into the rootfs open at rootfd. what names the layer in
 * details ("layer 2 (sha256:ab12...)"). */
int unpack_layer(int rootfd, const char *path, const char *what, const struct unpack_opts *o,
                 struct unpack_stats *st);

/* The whole image into dest (a folder that need not exist): once. When
 * dest + UNPACK_MARKER (a file beside it) names these digests, returns 1 and touches nothing.
 * Else every layer's digest is checked first, then the layers are unpacked
 * in order into dest + ".partial", which becomes dest only when all of
 * them went in; on any failure nothing is left of either, and the error's
 * detail names the layer, the entry and the reason. 0 when unpacked now. */
int unpack_rootfs(const char *dest, const struct unpack_layer *layers, size_t n,
                  const struct unpack_opts *o, struct unpack_stats *st);

/* Remove path and everything below it without following any symlink. */
int unpack_rm_rf(const char *path);

#endif
