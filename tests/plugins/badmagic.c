/* Garbage where the magic should be: the host must stop reading there. */
#include <ferry/plugin.h>

static const struct ferry_plugin bad = {
    .magic = 0xdeadbeefu,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "badmagic",
    .runtimes = "badmagic",
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void) { return &bad; }
