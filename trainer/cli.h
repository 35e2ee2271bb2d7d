/* Conventions every moda subcommand shares: its exit status for a bad
 * command line, and the room for one error message. */
#ifndef MODA_CLI_H
#define MODA_CLI_H

#define EXIT_USAGE 2  /* a usage error; 1 (EXIT_FAILURE) is a failure */
#define ERR_LEN 1024

#endif
