/* Right magic, but a table that claims to end after struct_size: the host
 * must not read the pointers that would follow. The object itself is just
 * the two words, so reading further would be out of bounds. */
#include <ferry/plugin.h>

static const uint32_t table[2] = {FERRY_PLUGIN_MAGIC, 8};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    return (const struct ferry_plugin *)(const void *)table;
}
