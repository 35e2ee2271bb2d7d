#include "cli_env.h"

#include <stdlib.h>
#include <string.h>

registry_remote_options cli_env_registry_options(void) {
    return (registry_remote_options){
        .cache_dir = getenv("MODA_REGISTRY_CACHE"),
        .cache_home = getenv("XDG_CACHE_HOME"),
        .home = getenv("HOME"),
        .timeout_s = registry_timeout_parse(getenv("MODA_REGISTRY_TIMEOUT")),
    };
}

/* Set only by exactly "1", as documented. */
static bool env_is_one(const char *name) {
    const char *v = getenv(name);
    return v && strcmp(v, "1") == 0;
}

backend_options cli_env_backend_options(void) {
    return (backend_options){
        .cuda_tf32 = env_is_one("MODA_CUDA_TF32"),
        .cuda_sync_each_op = env_is_one("MODA_CUDA_SYNC"),
    };
}
