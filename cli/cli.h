/* Helpers the verbs in cli/ share (defined in main.c), and the verbs that
 * live in their own files. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

#include "wire.pb-c.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

json_t *labels_json(const Ferry__Wire__HostInfo *h);
/* "k=v,k=v", or "-" without labels. */
void labels_text(const Ferry__Wire__HostInfo *h, char *out, size_t cap);
/* ISO 8601 UTC, or "-" for 0. */
void iso_ms(uint64_t ms, char *out, size_t cap);

/* ferry hosts [accept|token] (cli/hosts.c). */
int cli_hosts(int argc, char **argv);
/* ferry logs NAME (cli/logs.c). */
int cli_logs(int argc, char **argv);

#endif
