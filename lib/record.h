/* Signed deploy records: the operator's decisions, verified by the registry
 * and again by every agent against its own trusted keys. */
#ifndef FERRY_LIB_RECORD_H
#define FERRY_LIB_RECORD_H

#include "key.h"
#include "manifest.pb-c.h"

/* Encode r, sign the bytes with k; *out is a new SignedRecord (free with
 * signed_record_free). */
int record_sign(const Ferry__DeployRecord *r, const struct key_secret *k,
                Ferry__SignedRecord **out);
/* Verify sr against t, then decode and validate the record. *out is freed
 * with record_free; signer (may be NULL) gets the key id. Errors name the
 * record (name, version) and the reason, e.g. the untrusted key id. */
int record_verify(const Ferry__SignedRecord *sr, const struct trust *t, Ferry__DeployRecord **out,
                  char signer[KEY_ID_LEN + 1]);
/* Decode and validate without checking the signature (display only). */
int record_decode(const uint8_t *buf, size_t len, Ferry__DeployRecord **out);
void record_free(Ferry__DeployRecord *r);
void signed_record_free(Ferry__SignedRecord *sr);

#endif
