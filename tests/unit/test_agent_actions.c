/* The agent's actions (agent/actions.c): what it refuses before acting
 * (unsigned, tampered, untrusted, for another host, replayed, expired), and
 * the logs verb's reading of the capped log files (tail, bounds, rotation,
 * a cursor that survives a rotation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agent/actions.h"
#include "clock.h"
#include "error.h"
#include "scratch.h"

static int setup(void **state) { return scratch_setup(state, "agent-actions"); }
static int teardown(void **state) { return scratch_teardown(state); }

static void write_file(const char *dir, const char *name, const char *text, const char *mode)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.ferry", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *dir, struct logs_request *req, size_t max,
                       struct logs_result *res)
{
    assert_int_equal(logs_read(dir, req, max, res), 0);
    char *s = malloc(res->len + 1);
    if (res->len)
        memcpy(s, res->data, res->len);
    s[res->len] = '\0';
    free(res->data);
    return s;
}

static void test_request_parse(void **state)
{
    (void)state;
    struct logs_request r;
    assert_int_equal(logs_request_parse("{}", &r), 0);
    assert_int_equal(r.tail, LOGS_TAIL_DEFAULT);
    assert_false(r.stderr_stream);
    assert_false(r.has_offset);
    assert_int_equal(logs_request_parse("{\"stream\":\"stderr\",\"tail\":7}", &r), 0);
    assert_true(r.stderr_stream);
    assert_int_equal(r.tail, 7);
    assert_int_equal(logs_request_parse("{\"offset\":12,\"rotation\":\"none\"}", &r), 0);
    assert_true(r.has_offset);
    assert_int_equal(r.offset, 12);
    assert_string_equal(r.rotation, "none");
    assert_int_equal(logs_request_parse("{\"tail\":0}", &r), FERRY_E_INVALID);
    assert_int_equal(logs_request_parse("{\"tail\":10001}", &r), FERRY_E_INVALID);
    assert_int_equal(logs_request_parse("{\"stream\":\"stdin\"}", &r), FERRY_E_INVALID);
    assert_int_equal(logs_request_parse("{\"offset\":-1}", &r), FERRY_E_INVALID);
    assert_int_equal(logs_request_parse("{\"path\":\"/etc/passwd\"}", &r), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "'path' is not a valid field"));
    assert_int_equal(logs_request_parse("[1]", &r), FERRY_E_INVALID);
}

static void test_tail(void **state)
{
    const char *dir = *state;
    struct logs_request req = {.tail = 3};
    struct logs_result res;
    /* No output yet: nothing, and a cursor at 0. */
    char *s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "");
    assert_int_equal(res.offset, 0);
    assert_string_equal(res.rotation, "none");
    free(s);

    write_file(dir, "stdout.log", "1\n2\n3\n4\n5\n", "w");
    s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "3\n4\n5\n");
    assert_int_equal(res.offset, 10);
    assert_false(res.truncated);
    free(s);
    /* An unfinished last line counts as a line. */
    write_file(dir, "stdout.log", "6", "a");
    s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "4\n5\n6");
    free(s);
    req.tail = 100;
    s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "1\n2\n3\n4\n5\n6");
    free(s);
    /* stderr is its own file. */
    req.stderr_stream = 1;
    write_file(dir, "stderr.log", "oops\n", "w");
    s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "oops\n");
    free(s);
}

static void test_tail_bounded(void **state)
{
    const char *dir = *state;
    write_file(dir, "stdout.log", "aaaaaaaaaa\nbbbbbbbbbb\ncccccccccc\n", "w");
    struct logs_request req = {.tail = 100};
    struct logs_result res;
    /* 15 bytes hold the last line and part of the one before: only whole
     * lines are shown, and the answer says some were left out. */
    char *s = read_text(dir, &req, 15, &res);
    assert_string_equal(s, "cccccccccc\n");
    assert_true(res.truncated);
    free(s);
}

static void test_tail_across_rotation(void **state)
{
    const char *dir = *state;
    write_file(dir, "stdout.log.1", "1\n2\n3\n", "w");
    write_file(dir, "stdout.log", "4\n5\n", "w");
    struct logs_request req = {.tail = 4};
    struct logs_result res;
    char *s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "2\n3\n4\n5\n");
    assert_int_equal(res.offset, 4);
    assert_string_not_equal(res.rotation, "none");
    free(s);
    /* Just rotated: the current file is empty, the lines are all in .1. */
    write_file(dir, "stdout.log", "", "w");
    s = read_text(dir, &req, 1000, &res);
    assert_string_equal(s, "1\n2\n3\n");
    assert_int_equal(res.offset, 0);
    free(s);
}

static void test_follow(void **state)
{
    const char *dir = *state;
    write_file(dir, "stdout.log", "a\nb\n", "w");
    struct logs_request req = {.tail = 1};
    struct logs_result res;
    free(read_text(dir, &req, 1000, &res));
    struct logs_request f = {.has_offset = 1, .offset = res.offset};
    snprintf(f.rotation, sizeof f.rotation, "%s", res.rotation);
    /* Nothing new, then what was appended. */
    char *s = read_text(dir, &f, 1000, &res);
    assert_string_equal(s, "");
    free(s);
    write_file(dir, "stdout.log", "c\n", "a");
    s = read_text(dir, &f, 1000, &res);
    assert_string_equal(s, "c\n");
    free(s);
    f.offset = res.offset;
    snprintf(f.rotation, sizeof f.rotation, "%s", res.rotation);
    /* A rotation as the agent does it (copy to .1, truncate), with a line
     * written before it and one after: neither is lost nor repeated. */
    write_file(dir, "stdout.log", "d\n", "a");
    write_file(dir, "stdout.log.1", "a\nb\nc\nd\n", "w");
    write_file(dir, "stdout.log", "e\n", "w");
    s = read_text(dir, &f, 1000, &res);
    assert_string_equal(s, "d\ne\n");
    assert_int_equal(res.offset, 2);
    free(s);
    f.offset = res.offset;
    snprintf(f.rotation, sizeof f.rotation, "%s", res.rotation);
    s = read_text(dir, &f, 1000, &res);
    assert_string_equal(s, "");
    free(s);
    /* Too much at once: the newest bytes, and a note. */
    write_file(dir, "stdout.log", "0123456789\n", "a");
    s = read_text(dir, &f, 4, &res);
    assert_string_equal(s, "789\n");
    assert_true(res.truncated);
    free(s);
}

/* ---- receiving ------------------------------------------------------------------ */

struct fixture {
    uv_loop_t loop;
    struct agent_actions *aa;
    struct key_secret ops, stranger, viewer;
    struct key_public trusted[1], logs_only[1];
    struct trust trust, trust_logs; /* trust_logs: --trust-logs, the viewer's key */
    const char *dir;
    int ready;
};

static void make_key(struct key_secret *k, const char *name)
{
    memset(k, 0, sizeof *k);
    crypto_sign_keypair(k->pub.pk, k->sk);
    key_id_of(k->pub.pk, k->pub.id);
    snprintf(k->pub.name, sizeof k->pub.name, "%s", name);
}

static int lookup(void *arg, const char *workload, char *dir, size_t cap, char *version,
                  size_t vcap)
{
    struct fixture *f = arg;
    if (strcmp(workload, "web") != 0)
        return FERRY_E_NOTFOUND;
    snprintf(dir, cap, "%s", f->dir);
    snprintf(version, vcap, "1.0");
    return 0;
}

static void on_ready(void *arg) { ((struct fixture *)arg)->ready++; }

/* Stands in for the agent's plugin routing (agent/runaction.c): "echo"
 * answers at once, "later" from another thread after the callback
 * returned, as a plugin's action() on the thread pool does; "flood"
 * answers too much, anything else is unknown. */
struct later {
    pthread_t t;
    struct agent_actions *aa;
    uint8_t id[ACTION_ID_LEN];
    int started;
};
static struct later later_call;

static void *answer_later(void *arg)
{
    struct later *l = arg;
    agent_actions_answer(l->aa, l->id, 0, "{\"late\":true}", (const uint8_t *)"done", 4);
    return NULL;
}

static int other_verb(void *arg, struct agent_actions *aa, const uint8_t id[ACTION_ID_LEN],
                      const char *workload, const char *verb, const char *req)
{
    (void)arg;
    if (strcmp(verb, "echo") == 0) {
        agent_actions_answer(aa, id, 0, "{\"ok\":true}", (const uint8_t *)"pong", 4);
        return 0;
    }
    if (strcmp(verb, "whoami") == 0) {
        agent_actions_answer(aa, id, 0, req, NULL, 0);
        return 0;
    }
    if (strcmp(verb, "later") == 0) {
        later_call.aa = aa;
        memcpy(later_call.id, id, ACTION_ID_LEN);
        later_call.started = pthread_create(&later_call.t, NULL, answer_later, &later_call) == 0;
        return later_call.started ? 0 : -EAGAIN;
    }
    if (strcmp(verb, "flood") == 0) {
        uint8_t *big = calloc(1, ACTION_REPLY_DATA_MAX + 1);
        agent_actions_answer(aa, id, 0, NULL, big, ACTION_REPLY_DATA_MAX + 1);
        free(big);
        return 0;
    }
    return err_set(FERRY_E_NOTFOUND, "action %s: no such verb for %s", verb, workload);
}

static void fixture_init(struct fixture *f, const char *dir)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(sodium_init() >= 0, 1);
    make_key(&f->ops, "ops");
    make_key(&f->stranger, "stranger");
    f->trusted[0] = f->ops.pub;
    f->trust = (struct trust){f->trusted, 1};
    make_key(&f->viewer, "viewer");
    f->logs_only[0] = f->viewer.pub;
    f->trust_logs = (struct trust){f->logs_only, 1};
    f->dir = dir;
    uv_loop_init(&f->loop);
    struct agent_actions_config cfg = {
        .host = "h1", .trust = &f->trust, .trust_logs = &f->trust_logs,
        .lookup = lookup, .lookup_arg = f,
        .reply_ready = on_ready, .reply_arg = f,
        .other_verb = other_verb, .other_verb_arg = f,
    };
    assert_int_equal(agent_actions_new(&f->loop, &cfg, &f->aa), 0);
}

static void fixture_fini(struct fixture *f)
{
    agent_actions_close(f->aa);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Receive sa, let the loop act, and return the one reply. */
static Ferry__Wire__ActionReplyBody *exchange(struct fixture *f, Ferry__Wire__SignedAction *sa)
{
    int before = f->ready;
    agent_actions_receive(f->aa, sa);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->ready, before + 1);
    Ferry__Wire__ActionReplyBody *b = agent_actions_next_reply(f->aa);
    assert_non_null(b);
    assert_null(agent_actions_next_reply(f->aa));
    assert_string_equal(b->host, "h1");
    assert_int_equal(b->id.len, ACTION_ID_LEN);
    return b;
}

static Ferry__Wire__SignedAction *sign(const struct key_secret *k, const char *host,
                                       const char *workload, const char *verb, uint64_t now,
                                       uint32_t ttl)
{
    Ferry__Wire__SignedAction *sa = NULL;
    assert_int_equal(action_sign(k, host, workload, verb, "{\"tail\":1}", now, ttl, &sa, NULL), 0);
    return sa;
}

static void expect_refusal(struct fixture *f, Ferry__Wire__SignedAction *sa,
                           Ferry__Wire__Code code, const char *text)
{
    Ferry__Wire__ActionReplyBody *b = exchange(f, sa);
    assert_int_equal(b->code, code);
    if (!strstr(b->error, text))
        fail_msg("error '%s' lacks '%s'", b->error, text);
    assert_int_equal(b->data.len, 0);
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
}

static void test_receive(void **state)
{
    const char *dir = *state;
    write_file(dir, "stdout.log", "hello\nworld\n", "w");
    struct fixture f;
    fixture_init(&f, dir);
    uint64_t now = clock_unix_ms();

    /* Signed by a trusted key, for this host: answered with the lines. */
    Ferry__Wire__SignedAction *ok = sign(&f.ops, "h1", "web", "logs", now, 60000);
    Ferry__Wire__ActionReplyBody *b = exchange(&f, ok);
    assert_int_equal(b->code, FERRY__WIRE__CODE__OK);
    assert_int_equal(b->data.len, 6);
    assert_memory_equal(b->data.data, "world\n", 6);
    assert_non_null(strstr(b->reply_json, "\"offset\":12"));
    assert_non_null(strstr(b->reply_json, "\"version\":\"1.0\""));
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    /* The same action again is a replay. */
    expect_refusal(&f, ok, FERRY__WIRE__CODE__EXISTS, "used already");
    action_signed_free(ok);

    /* Unsigned. */
    Ferry__Wire__SignedAction *sa = sign(&f.ops, "h1", "web", "logs", now, 60000);
    size_t slen = sa->signature.len;
    sa->signature.len = 0;
    expect_refusal(&f, sa, FERRY__WIRE__CODE__UNTRUSTED, "not signed");
    sa->signature.len = slen;
    /* Tampered: one bit of the signed body. */
    sa->body.data[sa->body.len - 1] ^= 1;
    expect_refusal(&f, sa, FERRY__WIRE__CODE__SIGNATURE, "does not verify");
    action_signed_free(sa);
    /* A key the registry may trust but this host does not. */
    sa = sign(&f.stranger, "h1", "web", "logs", now, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__UNTRUSTED, "which is not trusted");
    action_signed_free(sa);
    /* For another host. */
    sa = sign(&f.ops, "h2", "web", "logs", now, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__INVALID, "addressed to host h2, this is h1");
    action_signed_free(sa);
    /* Expired. */
    sa = sign(&f.ops, "h1", "web", "logs", now - 120000, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__INVALID, "expired");
    action_signed_free(sa);
    /* A workload this host does not run, a verb nobody serves. */
    sa = sign(&f.ops, "h1", "db", "logs", now, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__NOT_FOUND, "workload db does not run on host h1");
    action_signed_free(sa);
    sa = sign(&f.ops, "h1", "web", "kernel-start", now, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__NOT_FOUND, "no such verb");
    action_signed_free(sa);
    /* Other verbs go to the plugin hook, and its answer is bounded too. */
    sa = sign(&f.ops, "h1", "web", "echo", now, 60000);
    b = exchange(&f, sa);
    assert_int_equal(b->code, FERRY__WIRE__CODE__OK);
    assert_string_equal(b->reply_json, "{\"ok\":true}");
    assert_int_equal(b->data.len, 4);
    assert_memory_equal(b->data.data, "pong", 4);
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    action_signed_free(sa);
    /* An answer that comes after the callback returned, from another
     * thread, is the action's reply too. */
    sa = sign(&f.ops, "h1", "web", "later", now, 60000);
    int before = f.ready;
    agent_actions_receive(f.aa, sa);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_true(later_call.started);
    pthread_join(later_call.t, NULL);
    assert_int_equal(f.ready, before + 1);
    b = agent_actions_next_reply(f.aa);
    assert_non_null(b);
    assert_int_equal(b->code, FERRY__WIRE__CODE__OK);
    assert_string_equal(b->reply_json, "{\"late\":true}");
    assert_int_equal(b->data.len, 4);
    assert_memory_equal(b->data.data, "done", 4);
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    action_signed_free(sa);
    sa = sign(&f.ops, "h1", "web", "flood", now, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__LIMIT, "over the reply bounds");
    action_signed_free(sa);
    /* A plugin's request names who signed it, from the host's own trust,
     * over whatever the request claimed. */
    assert_int_equal(action_sign(&f.ops, "h1", "web", "whoami",
                                 "{\"x\":1,\"requester\":\"forged\",\"requester_key\":\"00\"}",
                                 now, 60000, &sa, NULL),
                     0);
    b = exchange(&f, sa);
    assert_int_equal(b->code, FERRY__WIRE__CODE__OK);
    json_t *j = json_loads(b->reply_json, 0, NULL);
    char hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    sodium_bin2hex(hex, sizeof hex, f.ops.pub.pk, sizeof f.ops.pub.pk);
    assert_string_equal(json_string_value(json_object_get(j, "requester")), f.ops.pub.id);
    assert_string_equal(json_string_value(json_object_get(j, "requester_key")), hex);
    assert_int_equal(json_integer_value(json_object_get(j, "x")), 1);
    json_decref(j);
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    action_signed_free(sa);
    fixture_fini(&f);
}

/* A --trust-logs key (a dashboard's registry) reads logs and nothing else. */
static void test_logs_only_key(void **state)
{
    const char *dir = *state;
    write_file(dir, "stdout.log", "one\ntwo\n", "w");
    struct fixture f;
    fixture_init(&f, dir);
    uint64_t now = clock_unix_ms();
    Ferry__Wire__SignedAction *sa = sign(&f.viewer, "h1", "web", "logs", now, 60000);
    Ferry__Wire__ActionReplyBody *b = exchange(&f, sa);
    assert_int_equal(b->code, FERRY__WIRE__CODE__OK);
    assert_int_equal(b->data.len, 4);
    assert_memory_equal(b->data.data, "two\n", 4);
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    action_signed_free(sa);
    /* Any other verb, served or not, is refused before it reaches a plugin. */
    const char *verbs[] = {"echo", "kernel-start", "whoami"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        sa = sign(&f.viewer, "h1", "web", verbs[i], now, 60000);
        expect_refusal(&f, sa, FERRY__WIRE__CODE__UNTRUSTED, "may sign logs actions only");
        action_signed_free(sa);
    }
    /* Its tampered or expired logs actions are refused for that reason. */
    sa = sign(&f.viewer, "h1", "web", "logs", now, 60000);
    sa->body.data[sa->body.len - 1] ^= 1;
    expect_refusal(&f, sa, FERRY__WIRE__CODE__SIGNATURE, "does not verify");
    action_signed_free(sa);
    sa = sign(&f.viewer, "h1", "web", "logs", now - 120000, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__INVALID, "expired");
    action_signed_free(sa);
    /* A key in neither list is still not trusted; an operator key still
     * runs other verbs. */
    sa = sign(&f.stranger, "h1", "web", "logs", now, 60000);
    expect_refusal(&f, sa, FERRY__WIRE__CODE__UNTRUSTED, "which is not trusted");
    action_signed_free(sa);
    sa = sign(&f.ops, "h1", "web", "echo", now, 60000);
    b = exchange(&f, sa);
    assert_int_equal(b->code, FERRY__WIRE__CODE__OK);
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    action_signed_free(sa);
    fixture_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_parse),
        cmocka_unit_test_setup_teardown(test_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_across_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_only_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
