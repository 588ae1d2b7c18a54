/* The audit chain's canonical encoding and its check (auditchain.h). */
#include "auditchain.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

static void put_u64(struct hasher *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    hasher_update(h, b, sizeof b);
}

/* Length-prefixed, so no choice of field text can make two different
 * entries encode alike. */
static void put_str(struct hasher *h, const char *s)
{
    size_t n = strlen(s);
    put_u64(h, n);
    hasher_update(h, s, n);
}

void audit_entry_hash(const struct audit_entry *e, const struct digest *prev, struct digest *out)
{
    struct hasher h;
    hasher_init(&h);
    hasher_update(&h, prev->b, DIGEST_LEN);
    if (e->format == 1) {
        char line[2048];
        int len = snprintf(line, sizeof line, "%lld\n%s\n%s\n%s\n", (long long)e->time_unix,
                           e->key_id, e->what, e->detail);
        hasher_update(&h, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1));
    } else {
        static const char tag[] = "ferry-audit-v2";
        hasher_update(&h, tag, sizeof tag);
        put_u64(&h, e->seq);
        put_u64(&h, (uint64_t)e->time_unix);
        put_str(&h, e->key_id);
        put_str(&h, e->role);
        put_str(&h, e->what);
        put_str(&h, e->detail);
    }
    hasher_final(&h, out);
}

void audit_cursor_init(struct audit_cursor *c)
{
    memset(c, 0, sizeof *c);
    c->next_seq = 1;
}

int audit_cursor_step(struct audit_cursor *c, const struct audit_entry *e, char *why, size_t cap)
{
    const char *what = NULL;
    struct digest want;
    if (e->seq != c->next_seq)
        what = e->seq > c->next_seq ? "entries before it are missing" : "it is out of order";
    else if (!digest_equal(&e->prev_hash, &c->prev))
        what = "its previous hash is not the hash of the entry before it";
    else if (e->format != 1 && e->format != AUDIT_FORMAT)
        what = "its format is unknown";
    else {
        audit_entry_hash(e, &c->prev, &want);
        if (!digest_equal(&want, &e->hash))
            what = "its content does not match its hash";
    }
    if (what) {
        snprintf(why, cap, "audit entry %llu (%s %s) does not match: %s",
                 (unsigned long long)e->seq, e->what, e->detail, what);
        return err_set(FERRY_E_DIGEST, "%s", why);
    }
    c->prev = e->hash;
    c->next_seq++;
    c->checked++;
    return 0;
}
