/* The settings `moda` takes from the environment (README.md). A command
 * reads them once, where it starts, and passes them down: the libraries
 * below read no environment. */
#ifndef MODA_CLI_ENV_H
#define MODA_CLI_ENV_H

#include "backend.h"
#include "registry.h"

/* Registries behind a URL: $MODA_REGISTRY_CACHE, else $XDG_CACHE_HOME or
 * $HOME for the mirrors, and $MODA_REGISTRY_TIMEOUT. The strings point
 * into the environment. */
registry_remote_options cli_env_registry_options(void);

/* The CUDA backend: MODA_CUDA_TF32=1 and MODA_CUDA_SYNC=1. */
backend_options cli_env_backend_options(void);

#endif
