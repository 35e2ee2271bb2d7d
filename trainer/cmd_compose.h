/* `moda compose`: compose a registry model's modules for a set of classes,
 * report the composed model's size, MACs and compose time, and optionally
 * store it in a registry as a model of its own. argv[1] is the
 * subcommand; options start at argv[2]. Returns the process exit code: 0,
 * 1 (runtime error) or 2 (usage). */
#ifndef MODA_CMD_COMPOSE_H
#define MODA_CMD_COMPOSE_H

int cmd_compose(int argc, char **argv);

#endif
