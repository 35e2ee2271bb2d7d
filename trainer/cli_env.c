#include "cli_env.h"

#include <stdlib.h>

registry_remote_options cli_env_registry_options(void) { return registry_remote_options_from(getenv); }

backend_options cli_env_backend_options(void) { return backend_options_from(getenv); }
