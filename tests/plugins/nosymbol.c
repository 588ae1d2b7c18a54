/* The common mistake: the entry point is defined but, built with hidden
 * visibility and not marked default, never exported. */
#include <ferry/plugin.h>

static const struct ferry_plugin plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "nosymbol",
    .runtimes = "nosymbol",
};

const struct ferry_plugin *ferry_plugin_entry(void) { return &plugin; }
