/* Deploy records and desired state, as the agent reads a Poll answer: decode
 * the DesiredState, verify each SignedRecord against the agent's trust set,
 * parse its signed selector and match it against the host's own labels.
 * The agent keeps each applied record in its local database and reads it
 * back on restart, so a verified record must also survive a round trip.
 *
 * Input: an encoded ferry.wire.DesiredState. Every record is checked as
 * sent and once more re-signed by the fixed publisher key, so a mutated
 * record gets past the signature as a trusted operator's would; so is its
 * envelope (lib/envelope.c), re-signed by the same key. */
#include "envelope.h"
#include "error.h"
#include "fuzz_common.h"
#include "record.h"
#include "selector.h"
#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct trust trust;
static struct key_secret publisher;
static struct label_set host_labels;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_trust(&trust);
    fuzz_publisher_key(&publisher);
    if (labels_parse(FUZZ_HOST_LABELS, &host_labels) < 0)
        abort();
    return 0;
}

static void check_record(const Ferry__SignedRecord *sr)
{
    Ferry__DeployRecord *rec = NULL;
    char signer[KEY_ID_LEN + 1];
    if (record_verify(sr, &trust, &rec, signer) < 0)
        return;
    struct label_set sel;
    if (labels_parse(rec->selector, &sel) < 0) {
        fprintf(stderr, "verified record with an unparsable selector: %s\n", err_detail());
        abort();
    }
    (void)selector_matches(&sel, &host_labels);

    size_t len = ferry__signed_record__get_packed_size(sr);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    ferry__signed_record__pack(sr, buf);
    Ferry__SignedRecord *back = ferry__signed_record__unpack(NULL, len, buf);
    Ferry__DeployRecord *rec2 = NULL;
    if (!back || record_verify(back, &trust, &rec2, NULL) < 0) {
        fprintf(stderr, "a verified record does not verify after a round trip\n");
        abort();
    }
    record_free(rec2);
    signed_record_free(back);
    free(buf);
    record_free(rec);
}

/* The envelope, as sent and with its body re-signed by the fixed key
 * (standing in for the registry's), checked as the agent checks it. */
static void check_envelope(const Ferry__Wire__DesiredState *ds)
{
    struct envelope_held held = {0};
    struct envelope_verdict v;
    (void)envelope_verify(ds->envelope, &publisher.pub, "fuzz-host", ds->records, ds->n_records,
                          ds->pins, ds->n_pins, &held, 1700000000000ull, &v);
    if (!ds->envelope)
        return;
    Ferry__Wire__SignedEnvelope ours = *ds->envelope;
    uint8_t sb[crypto_sign_BYTES];
    key_sign(&publisher, ours.body.data, ours.body.len, sb);
    ours.key_id = publisher.pub.id;
    ours.signature.data = sb;
    ours.signature.len = sizeof sb;
    int rc = envelope_verify(&ours, &publisher.pub, "fuzz-host", ds->records, ds->n_records,
                             ds->pins, ds->n_pins, &held, 1700000000000ull, &v);
    if (rc == 0 && v.refusal != ENVELOPE_OK) {
        fprintf(stderr, "an accepted envelope carries a refusal\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ferry__Wire__DesiredState *ds = ferry__wire__desired_state__unpack(NULL, size, data);
    if (!ds)
        return 0;
    check_envelope(ds);
    for (size_t i = 0; i < ds->n_records; i++) {
        const Ferry__SignedRecord *sr = ds->records[i];
        check_record(sr);
        /* The same bytes signed by the trusted key. */
        Ferry__Signature sig;
        Ferry__SignedRecord ours;
        uint8_t sb[crypto_sign_BYTES];
        ferry__signature__init(&sig);
        ferry__signed_record__init(&ours);
        key_sign(&publisher, sr->record.data, sr->record.len, sb);
        sig.key_id = publisher.pub.id;
        sig.public_key.data = publisher.pub.pk;
        sig.public_key.len = sizeof publisher.pub.pk;
        sig.signature.data = sb;
        sig.signature.len = sizeof sb;
        ours.record = sr->record;
        ours.signature = &sig;
        check_record(&ours);
    }
    ferry__wire__desired_state__free_unpacked(ds, NULL);
    return 0;
}
