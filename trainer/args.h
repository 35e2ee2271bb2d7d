/* A small table-driven flag parser for the moda subcommands:
 * "--name value", "--name=value" and bare "--flag" for booleans. */
#ifndef MODA_ARGS_H
#define MODA_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum arg_type { ARG_STRING, ARG_INT, ARG_FLOAT, ARG_U64, ARG_BOOL } arg_type;

typedef struct arg_spec {
    const char *name; /* without the leading "--" */
    arg_type type;
    void *value;      /* const char **, int *, float *, uint64_t *, bool * */
    const char *meta; /* e.g. "N"; NULL for booleans */
    const char *help;
} arg_spec;

/* Parses argv[first..argc). Positional arguments are stored in positional
 * (up to max_positional, count in *n_positional). On a bad flag or value
 * prints a message to stderr and returns false; "--help" / "-h" sets *help. */
bool args_parse(int argc, char **argv, int first, const arg_spec *specs, int n_specs, const char **positional,
                int max_positional, int *n_positional, bool *help);
void args_print_options(FILE *f, const arg_spec *specs, int n_specs);

#endif
