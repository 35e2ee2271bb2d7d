/* `moda eval`: test accuracy and per-class accuracy of a checkpoint, on
 * the data it was trained on. argv[1] is the subcommand. Returns the exit
 * code: 0, 1 (runtime error) or 2 (usage). */
#ifndef MODA_CMD_EVAL_H
#define MODA_CMD_EVAL_H

int cmd_eval(int argc, char **argv);

#endif
