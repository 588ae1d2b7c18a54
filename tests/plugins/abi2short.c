/* Claims ABI 2 but hands over a table that ends where ABI 1's did: the
 * host must refuse it rather than read exited..metrics2 past its end. The
 * object is exactly that long, so reading further would be out of bounds. */
#include <ferry/plugin.h>

#include <stddef.h>

#define V1_SIZE (offsetof(struct ferry_plugin, fini) + sizeof(void (*)(void *)))

static int s_init(void **state, const struct ferry_host *host)
{
    (void)host;
    *state = NULL;
    return 0;
}

static _Alignas(8) unsigned char table[V1_SIZE];

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    struct ferry_plugin p = {
        .magic = FERRY_PLUGIN_MAGIC,
        .struct_size = (uint32_t)V1_SIZE,
        .abi = 2,
        .name = "abi2short",
        .runtimes = "abi2short",
        .init = s_init,
    };
    __builtin_memcpy(table, &p, V1_SIZE);
    return (const struct ferry_plugin *)(const void *)table;
}
