#include "jointoken.h"
#include "error.h"
#include "wire.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void iso(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int jointoken_make(const struct key_secret *k, const struct label_set *labels, uint64_t now_ms,
                   uint64_t ttl_ms, char **text)
{
    if (ttl_ms == 0 || ttl_ms > JOIN_TOKEN_MAX_TTL_MS)
        return err_set(FERRY_E_INVALID, "join token: the TTL must be between 1 s and %llu days",
                       (unsigned long long)(JOIN_TOKEN_MAX_TTL_MS / 86400000));
    Ferry__Wire__JoinToken tok;
    ferry__wire__join_token__init(&tok);
    Ferry__Wire__Label lv[LABEL_MAX], *lp[LABEL_MAX];
    size_t nl = labels ? labels->n : 0;
    for (size_t i = 0; i < nl; i++) {
        ferry__wire__label__init(&lv[i]);
        lv[i].key = (char *)labels->v[i].key;
        lv[i].value = (char *)labels->v[i].value;
        lp[i] = &lv[i];
    }
    uint8_t nonce[16];
    randombytes_buf(nonce, sizeof nonce);
    tok.purpose = JOIN_TOKEN_PURPOSE;
    tok.labels = lp;
    tok.n_labels = nl;
    tok.issued_ms = now_ms;
    tok.expires_ms = now_ms + ttl_ms;
    tok.nonce = (ProtobufCBinaryData){sizeof nonce, nonce};
    size_t tlen = ferry__wire__join_token__get_packed_size(&tok);
    uint8_t *tbuf = malloc(tlen ? tlen : 1);
    if (!tbuf)
        return -ENOMEM;
    ferry__wire__join_token__pack(&tok, tbuf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(k, tbuf, tlen, sig);
    Ferry__Wire__SignedJoinToken st;
    ferry__wire__signed_join_token__init(&st);
    st.token = (ProtobufCBinaryData){tlen, tbuf};
    st.key_id = (char *)k->pub.id;
    st.signature = (ProtobufCBinaryData){sizeof sig, sig};
    size_t slen = ferry__wire__signed_join_token__get_packed_size(&st);
    uint8_t *sbuf = malloc(slen);
    size_t b64 = sodium_base64_encoded_len(slen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(strlen(JOIN_TOKEN_PREFIX) + b64);
    if (!sbuf || !out) {
        free(tbuf);
        free(sbuf);
        free(out);
        return -ENOMEM;
    }
    ferry__wire__signed_join_token__pack(&st, sbuf);
    strcpy(out, JOIN_TOKEN_PREFIX);
    sodium_bin2base64(out + strlen(JOIN_TOKEN_PREFIX), b64, sbuf, slen,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    free(tbuf);
    free(sbuf);
    *text = out;
    return 0;
}

int jointoken_from_text(const char *text, uint8_t **bytes, size_t *len)
{
    size_t plen = strlen(JOIN_TOKEN_PREFIX);
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                     text[n - 1] == '\r'))
        n--;
    if (n <= plen || strncmp(text, JOIN_TOKEN_PREFIX, plen) != 0)
        return err_set(FERRY_E_INVALID, "not a ferry join token (expected '%s...')",
                       JOIN_TOKEN_PREFIX);
    size_t cap = n, got = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    const char *end = NULL;
    if (sodium_base642bin(buf, cap, text + plen, n - plen, NULL, &got, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != text + n || got == 0) {
        free(buf);
        return err_set(FERRY_E_INVALID, "not a ferry join token (bad base64)");
    }
    *bytes = buf;
    *len = got;
    return 0;
}

int jointoken_load(const char *path, uint8_t **bytes, size_t *len)
{
    /* O_NONBLOCK: a FIFO in place of the file must not hang the agent. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(FERRY_E_INVALID, "%s: not a regular file", path);
    }
    if (st.st_size > JOIN_TOKEN_TEXT_MAX) {
        close(fd);
        return err_set(FERRY_E_LIMIT, "%s: larger than %d bytes: not a join token", path,
                       JOIN_TOKEN_TEXT_MAX);
    }
    char buf[JOIN_TOKEN_TEXT_MAX + 1];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return err_set(-e, "%s: %s", path, strerror(e));
        }
        if (n == 0 || used + (size_t)n >= sizeof buf - 1) {
            used += (size_t)n;
            break;
        }
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    if (strlen(buf) != used)
        return err_set(FERRY_E_INVALID, "%s: not a ferry join token", path);
    int rc = jointoken_from_text(buf, bytes, len);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(rc, "%s: %s", path, why);
    }
    return 0;
}

int jointoken_verify(const uint8_t *bytes, size_t len, const struct trust *t, uint64_t now_ms,
                     uint64_t skew_ms, struct join_claims *out)
{
    Ferry__Wire__SignedJoinToken *st = ferry__wire__signed_join_token__unpack(NULL, len, bytes);
    if (!st)
        return err_set(FERRY_E_INVALID, "join token: not a ferry join token");
    int rc = 0;
    const struct key_public *k = st->key_id ? trust_find(t, st->key_id) : NULL;
    if (!k)
        rc = err_set(FERRY_E_UNTRUSTED, "join token: signed by key %.16s, which is not trusted",
                     st->key_id ? st->key_id : "?");
    else if (key_verify(k->pk, st->token.data, st->token.len, st->signature.data,
                        st->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "join token: bad signature for key %s", k->id);
    Ferry__Wire__JoinToken *tok =
        rc == 0 ? ferry__wire__join_token__unpack(NULL, st->token.len, st->token.data) : NULL;
    if (rc == 0 && (!tok || !tok->purpose || strcmp(tok->purpose, JOIN_TOKEN_PURPOSE) != 0))
        rc = err_set(FERRY_E_INVALID, "join token: not a ferry join token");
    struct join_claims c;
    memset(&c, 0, sizeof c);
    if (rc == 0) {
        char when[32];
        if (tok->issued_ms > now_ms + skew_ms) {
            iso(tok->issued_ms, when, sizeof when);
            rc = err_set(FERRY_E_INVALID,
                         "join token: issued at %s, in the future (check the clocks)", when);
        } else if (tok->expires_ms <= now_ms) {
            iso(tok->expires_ms, when, sizeof when);
            rc = err_set(FERRY_E_UNTRUSTED, "join token: expired at %s", when);
        } else if (tok->n_labels > LABEL_MAX) {
            rc = err_set(FERRY_E_LIMIT, "join token: more than %d labels", LABEL_MAX);
        }
    }
    for (size_t i = 0; rc == 0 && i < tok->n_labels; i++) {
        const Ferry__Wire__Label *l = tok->labels[i];
        char kv[2 * LABEL_TEXT_MAX + 2];
        if (!l->key || !l->value || strlen(l->key) > LABEL_TEXT_MAX ||
            strlen(l->value) > LABEL_TEXT_MAX)
            rc = err_set(FERRY_E_INVALID, "join token: a label is malformed");
        else {
            snprintf(kv, sizeof kv, "%s=%s", l->key, l->value);
            rc = labels_add(&c.labels, kv);
        }
    }
    if (rc == 0) {
        c.issued_ms = tok->issued_ms;
        c.expires_ms = tok->expires_ms;
        snprintf(c.signer, sizeof c.signer, "%s", k->id);
        *out = c;
    }
    if (tok)
        ferry__wire__join_token__free_unpacked(tok, NULL);
    ferry__wire__signed_join_token__free_unpacked(st, NULL);
    return rc;
}
