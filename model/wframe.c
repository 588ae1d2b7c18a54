#include "wframe.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define FRAME_HDR 8
#define TENSOR_HDR 16
/* An answer is the batch's outputs: generous, but a bound, so a broken
 * worker cannot make the server allocate without limit. */
#define FRAME_MAX (1ull << 30)

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* One frame: 0 with kind and a malloc'd NUL-terminated body, -1 on EOF or
 * a read error, -2 on a frame this side will not take. */
int wframe_read(int fd, int *kind, uint8_t **body, size_t *len)
{
    uint8_t h[FRAME_HDR];
    if (read_full(fd, h, sizeof h) < 0)
        return -1;
    uint32_t n = get_u32(h);
    if ((uint64_t)n > FRAME_MAX || h[5] || h[6] || h[7])
        return -2;
    uint8_t *b = malloc((size_t)n + 1);
    if (!b)
        return -2;
    if (read_full(fd, b, n) < 0) {
        free(b);
        return -1;
    }
    b[n] = 0;
    *kind = h[4];
    *body = b;
    *len = n;
    return 0;
}

/* BYTES data: n elements of u32 length + bytes, exactly filling len. */
static int bytes_valid(const uint8_t *p, size_t len, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (len - off < 4)
            return 0;
        uint32_t l = get_u32(p + off);
        off += 4;
        if (len - off < l)
            return 0;
        off += l;
    }
    return off == len;
}

/* An 'O' body into tensors, every field checked: the worker runs the
 * user's code and may send anything. */
int wframe_parse_outputs(const uint8_t *b, size_t len, struct infer_result *res)
{
    memset(res, 0, sizeof *res);
    if (len < 8)
        return -1;
    uint32_t count = get_u32(b);
    if (count > MODEL_IO_MAX)
        return -1;
    size_t off = 8;
    for (uint32_t i = 0; i < count; i++) {
        if (len - off < TENSOR_HDR)
            goto bad;
        const uint8_t *h = b + off;
        unsigned dt = h[0], rank = h[1];
        size_t nlen = (size_t)h[2] | (size_t)h[3] << 8;
        uint64_t nbytes = get_u64(h + 8);
        off += TENSOR_HDR;
        if (dt >= DT_COUNT || rank > TENSOR_RANK_MAX || nlen == 0 || nlen >= TENSOR_NAME_MAX)
            goto bad;
        if ((len - off) / 8 < rank)
            goto bad;
        struct tensor *t = &res->outputs[res->n_outputs];
        t->dtype = (enum dtype)dt;
        t->rank = (int)rank;
        size_t elems = 1;
        for (unsigned d = 0; d < rank; d++) {
            int64_t v = (int64_t)get_u64(b + off + 8 * d);
            if (v < 0 || (v && elems > SIZE_MAX / (uint64_t)v))
                goto bad;
            t->shape[d] = v;
            elems *= (size_t)v;
        }
        off += 8 * (size_t)rank;
        if (len - off < pad8(nlen))
            goto bad;
        memcpy(t->name, b + off, nlen);
        t->name[nlen] = 0;
        if (memchr(t->name, 0, nlen))
            goto bad;
        off += pad8(nlen);
        if (nbytes > len - off)
            goto bad;
        size_t sz = dtype_size(t->dtype);
        if (sz ? (elems > SIZE_MAX / sz || elems * sz != nbytes)
               : !bytes_valid(b + off, (size_t)nbytes, elems))
            goto bad;
        t->n = elems;
        t->nbytes = (size_t)nbytes;
        t->data = malloc(nbytes ? (size_t)nbytes : 1);
        if (!t->data)
            goto bad;
        memcpy(t->data, b + off, (size_t)nbytes);
        res->n_outputs++;
        off += (size_t)nbytes;
        if (len - off < pad8((size_t)nbytes) - (size_t)nbytes)
            goto bad;
        off += pad8((size_t)nbytes) - (size_t)nbytes;
    }
    return 0;
bad:
    infer_result_fini(res);
    return -1;
}

/* Write the iovecs whole, IOV_MAX at a time, without SIGPIPE. */
static int send_all(int fd, struct iovec *iov, size_t n)
{
    while (n) {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = iov;
        m.msg_iovlen = n < IOV_MAX ? n : IOV_MAX;
        ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        size_t done = (size_t)k;
        while (n && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n) {
            iov->iov_base = (uint8_t *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

int wframe_send_batch(int fd, const struct pool_input *in, size_t n)
{
    static const uint8_t zeros[8];
    size_t n_iov = 2;
    for (size_t i = 0; i < n; i++)
        n_iov += 2 + in[i].n_segs;
    /* Headers: the frame's, the count, then per tensor its fixed part,
     * shape and padded name. */
    size_t hdr_cap = 16 + n * (TENSOR_HDR + 8 * TENSOR_RANK_MAX + TENSOR_NAME_MAX + 8);
    struct iovec *iov = malloc(n_iov * sizeof *iov);
    uint8_t *hdr = calloc(1, hdr_cap);
    int rc = n > MODEL_IO_MAX ? -EINVAL : -ENOMEM;
    if (iov && hdr && n <= MODEL_IO_MAX) {
        size_t k = 0, h = 16;
        uint64_t total = 16; /* frame header and count */
        iov[k++] = (struct iovec){hdr, 8};
        put_u32(hdr + 8, (uint32_t)n);
        iov[k++] = (struct iovec){hdr + 8, 8};
        for (size_t i = 0; i < n; i++) {
            size_t nlen = strnlen(in[i].name, TENSOR_NAME_MAX - 1), nbytes = 0;
            for (size_t s = 0; s < in[i].n_segs; s++)
                nbytes += in[i].segs[s].len;
            uint8_t *t = hdr + h;
            t[0] = (uint8_t)in[i].dtype;
            t[1] = (uint8_t)in[i].rank;
            t[2] = (uint8_t)nlen;
            t[3] = (uint8_t)(nlen >> 8);
            put_u64(t + 8, nbytes);
            for (int d = 0; d < in[i].rank; d++)
                put_u64(t + TENSOR_HDR + 8 * (size_t)d, (uint64_t)in[i].shape[d]);
            memcpy(t + TENSOR_HDR + 8 * (size_t)in[i].rank, in[i].name, nlen);
            size_t tl = TENSOR_HDR + 8 * (size_t)in[i].rank + pad8(nlen);
            iov[k++] = (struct iovec){t, tl};
            h += tl;
            for (size_t s = 0; s < in[i].n_segs; s++)
                if (in[i].segs[s].len)
                    iov[k++] = (struct iovec){(void *)in[i].segs[s].data, in[i].segs[s].len};
            iov[k++] = (struct iovec){(void *)zeros, pad8(nbytes) - nbytes};
            total += tl + pad8(nbytes);
        }
        if (total - FRAME_HDR > UINT32_MAX) {
            rc = -EMSGSIZE;
        } else {
            put_u32(hdr, (uint32_t)(total - FRAME_HDR));
            hdr[4] = K_INFER;
            rc = send_all(fd, iov, k);
        }
    }
    free(iov);
    free(hdr);
    return rc;
}
