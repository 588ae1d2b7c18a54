/* Path safety for hostile input: manifest paths and archive entry names. */
#ifndef FERRY_LIB_PATHSAFE_H
#define FERRY_LIB_PATHSAFE_H

#include <stddef.h>

#define PATH_REL_MAX 1024   /* bytes in a relative path */
#define PATH_COMPONENT_MAX 255
#define PATH_DEPTH_MAX 32

/* 0 when rel is a plain relative path: non-empty, no leading '/', no empty,
 * '.' or '..' component, no backslash or control byte, within the caps.
 * Else FERRY_E_UNSAFE_PATH with a detail naming the path and the reason. */
int path_check(const char *rel);

/* The folder the agent keeps inside every workload tree (logs). */
#define PATH_AGENT_DIR ".ferry"

/* path_check, plus what a file of a workload tree may not be: anything under
 * the agent's own folder (.ferry/), or under the spec file (ferry.yaml/x),
 * which materialization writes as a file. spec_file is that name. */
int path_check_workload(const char *rel, const char *spec_file);

#endif
