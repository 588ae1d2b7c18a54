/* What `ferry help`, `ferry help VERB` and `ferry VERB --help` print: one
 * entry per verb, so each verb's usage is written once. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

struct usage {
    const char *verb;
    const char *summary; /* the line(s) in `ferry help` */
    const char *detail;  /* added by `ferry help VERB` */
};

static const struct usage usages[] = {
    {"keygen", "  keygen NAME [--dir D]                      create NAME.key (0600) and NAME.pub\n",
     NULL},
    {"publish", "  publish DIR [--registry URL] [--key K] [-v] [--provenance builder=ID,commit=SHA,...]\n"
                "                                             sign and upload DIR (needs ferry.yaml)\n",
     "  An artifact whose runtime no plugin on the hosts serves is still published;\n"
     "  ferry deploy warns about it.\n"},
    {"pull", "  pull NAME@VERSION --out DIR [--trust P]... fetch, verify and materialize\n", NULL},
    {"export", "  export NAME@VERSION -o FILE.tar [--trust P]  write an air-gap bundle\n", NULL},
    {"import", "  import FILE.tar [--trust P] [-v]           verify a bundle and upload it\n", NULL},
    {"versions", "  versions NAME [--json]                     list published versions\n", NULL},
    {"inspect", "  inspect NAME@VERSION [--trust P]... [--json]  what an artifact holds (an image's layers)\n",
     "  With trusted keys (--trust or FERRY_TRUST) the signature is checked first.\n"},
    {"stats", "  stats [--json]                             registry counters\n", NULL},
    {"deploy",
     "  deploy NAME@VERSION --to K=V[,K=V] [--key K] [--wait [--timeout D]]  run it on matching hosts\n"
     "  deploy NAME --channel CH --to K=V[,K=V] [--key K]  hosts follow the channel\n",
     "  Prints how many online hosts match; with none the deployment is still\n"
     "  recorded and a warning goes to stderr. --wait: as status --wait --to.\n"},
    {"undeploy", "  undeploy NAME --to K=V[,K=V] [--key K]     stop it there\n", NULL},
    {"policy",
     "  policy sign FILE --key ADMIN.key           write FILE.sig (the governance policy)\n"
     "  policy show [--json]                       the registry's signed policy\n"
     "  policy check NAME@VERSION --channel CH [--json]  may it go there? exit 1: what is missing\n",
     "  docs/governance.md describes the policy file; docs/cli.md the exit codes.\n"},
    {"approve", "  approve NAME@VERSION [--role approver|privacy] [--key K]  sign an approval\n",
     "  One key counts once, however often it approves.\n"},
    {"promote", "  promote NAME@VERSION --channel CH [--key K]  move the channel (refused: what is missing)\n",
     NULL},
    {"channels", "  channels NAME [--json]                     where each channel of NAME points\n",
     NULL},
    {"keys", "  keys revoke KEYID --key ADMIN.key          revoke a key the policy names\n", NULL},
    {"rollback", "  rollback NAME --to K=V[,K=V] [--key K]     deploy the version that ran there before\n",
     "  Picks, from the registry's deploy history for NAME and that selector, the\n"
     "  newest version other than the current one, and signs a deploy of it\n"
     "  marked as a rollback. Prints the version it chose.\n"},
    {"deployments", "  deployments [--json]                       the current deployments, who signed them\n",
     NULL},
    {"history", "  history NAME [--json]                      every deploy, undeploy and rollback of NAME\n",
     NULL},
    {"hosts",
     "  hosts [--json]                             hosts, labels, online, plugins, pending\n"
     "  hosts accept NAME [--key-id ID] [--replace] [--key K]  enroll a pending host\n"
     "  hosts token [--label K=V]... [--ttl D] [--key K] [-o FILE]  a join token\n"
     "  hosts rm NAME [--key K]                    forget an offline host\n",
     NULL},
    {"status",
     "  status [--json]                            workloads per host, with their addresses\n"
     "  status --wait NAME@VERSION [--to K=V] [--timeout D]  until it runs on those hosts\n",
     "  --wait exits 0 when it runs (a job: succeeded) on every online host that\n"
     "  matches --to (without --to: every online host meant to run it), 1 as soon\n"
     "  as one reports failed or rolled_back, or at once when no online host\n"
     "  matches (without --to: no host is online), 3 at the timeout (default 300s).\n"},
    {"events", "  events [--host H] [--limit N] [--json]     workload state changes, newest last\n",
     NULL},
    {"logs", "  logs NAME [--host H] [--tail N] [--stderr] [--follow]  a workload's output\n", NULL},
    {"action", "  action NAME VERB [REQUEST] [--host H] [--timeout D]  ask a running workload's plugin\n",
     "  REQUEST is one JSON object: the text itself, - for stdin, or @FILE\n"
     "  (default {}). The verb goes to the workload's plugin (ABI 2 action())\n"
     "  on the host that runs it (--host when several do); its JSON answer is\n"
     "  printed. Signed by the operator key (--key or FERRY_KEY). Exit 0 when\n"
     "  the plugin answered, 1 with its error line otherwise.\n"},
    {"kernel", "  kernel start NAME@VERSION --to K=V [--idle D] [-o conn.json] | stop|interrupt|restart ID | list [--json]\n",
     "  start: a Jupyter kernel in a running notebook workload's directory on one\n"
     "  matching host; its connection file comes back sealed to your key and is\n"
     "  written 0600 (default kernel-ID.json); the kernel id is printed.\n"
     "  stop, interrupt (SIGINT), restart (same connection info): only the key\n"
     "  that started it, or an operator. list: every kernel on the online hosts. A kernel that\n"
     "  dies is restarted with the same connection info; one that ran no cell\n"
     "  for --idle (default 1h, 0 never) is stopped.\n"
     "  open SEALED [-o FILE]: open a kernel-start answer's sealed text.\n"},
    {"run", "  run NAME@VERSION --to K=V [--param K=V ...] [--wait] [--timeout D]  one notebook run now\n",
     "  Starts one run of a notebook workload on one matching host where it is\n"
     "  deployed (also between its scheduled runs) and prints the run id.\n"
     "  --param NAME=VALUE overrides notebook.parameters; VALUE is read as JSON\n"
     "  when it is JSON (10, 0.5, true, null, \"007\", [1,2]), else as a string.\n"
     "  --wait: until the run ended; exit 0 succeeded, 1 failed (the failing\n"
     "  cell's error on stderr), 3 after --timeout (default: no limit).\n"},
    {"runs", "  runs NAME [--json] [--limit N] | get RUN_ID [-o FILE]  notebook runs in the registry\n",
     "  NAME: the runs hosts reported, newest first: id, name, version, host,\n"
     "  status (running, succeeded, failed), started (Unix ms), duration_ms,\n"
     "  error. get: download the executed notebook (default run-ID.ipynb),\n"
     "  checked against the digest the host reported.\n"},
    {"kernelspec", "  kernelspec install NAME@VERSION --to K=V [--display-name T] [--name K] [--idle D] [--dir D]\n",
     "  A Jupyter kernel spec (DIR/kernels/K/kernel.json; DIR is --dir, else\n"
     "  JUPYTER_DATA_DIR, else ~/.local/share/jupyter; K defaults to\n"
     "  ferry-NAME-VERSION) whose kernel runs on a matching host: it names the\n"
     "  ferry-provisioner (installed with the Python package), the target, this\n"
     "  CLI and the --registry and --key in effect.\n"},
    {"metrics", "  metrics NAME [--host H] [--json]           the newest metrics hosts reported\n",
     NULL},
    {"predict", "  predict NAME [--host H] --json FILE|- [--mlflow] [--timeout D]  query a model endpoint\n",
     "  Finds a host where NAME runs (--host: that one) through the registry and\n"
     "  POSTs the JSON body as written to the endpoint's /v2/models/NAME/infer\n"
     "  (an Open Inference Protocol V2 request: {\"inputs\": [{\"name\", \"shape\",\n"
     "  \"datatype\", \"data\"}]}), or with --mlflow to /invocations (an MLflow\n"
     "  scoring body: dataframe_split, dataframe_records, instances or inputs).\n"
     "  Prints the response body. Exit 0 on a 2xx answer, 1 with the server's\n"
     "  error otherwise, 2 for usage errors. --timeout: default 30s.\n"},
    {"audit", "  audit [--json] [--verify]                  the registry's hash-chained audit log\n",
     "  Every change the registry made: time, key id, role, what, detail and the\n"
     "  entry's chained hash. --verify recomputes the chain from the entries and\n"
     "  exits 1 naming the first that does not match (0: verified, with the head\n"
     "  hash to keep). JSON: docs/governance.md, \"Audit log\".\n"},
    /* help and version are verbs too: `ferry help help` and `ferry version
     * --help` print usage like any other. */
    {"help", "  help [COMMAND]                             every command, or one command's usage\n",
     "  Also: ferry COMMAND --help (or -h) anywhere among its arguments.\n"},
    {"version", "  version                                    print the version (also ferry --version)\n",
     NULL},
};

static const char footer[] = "\n"
                             "Environment: FERRY_REGISTRY (--registry), FERRY_KEY (--key),\n"
                             "FERRY_TRUST (colon-separated .pub files, --trust).\n"
                             "Exit status: 0 success, 1 failure, 2 usage error, 3 timed out.\n";

void cli_help_all(FILE *f)
{
    fputs("usage: ferry COMMAND [options]     (ferry help COMMAND, ferry --version)\n\n", f);
    for (size_t i = 0; i < sizeof usages / sizeof usages[0]; i++)
        fputs(usages[i].summary, f);
    fputs(footer, f);
}

int cli_help_verb(const char *verb, FILE *f)
{
    for (size_t i = 0; i < sizeof usages / sizeof usages[0]; i++) {
        if (strcmp(usages[i].verb, verb) != 0)
            continue;
        fprintf(f, "usage: ferry %s ...\n\n", verb);
        fputs(usages[i].summary, f);
        if (usages[i].detail) {
            fputc('\n', f);
            fputs(usages[i].detail, f);
        }
        fputs(footer, f);
        return 0;
    }
    return -1;
}
