/* `moda decompose` and `moda inspect`: turn a checkpoint into a registry
 * model (activation rates, module stats, test accuracy) and show what a
 * registry holds. argv[1] is the subcommand; options start at argv[2].
 * Return the process exit code: 0, 1 (runtime error) or 2 (usage). */
#ifndef MODA_CMD_REGISTRY_H
#define MODA_CMD_REGISTRY_H

int cmd_decompose(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

#endif
