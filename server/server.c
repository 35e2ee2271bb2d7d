/* Placeholder: the daemon is being written. */
#include "server.h"
