/* placeholder: the exec plugin is being written */
#include <ferry/plugin.h>
