/* `moda eval-reuse`: reuse accuracy of composed models over class subsets
 * (the paper's RQ1), against the full models' logits sliced to the same
 * subsets. */
#ifndef MODA_CMD_REUSE_H
#define MODA_CMD_REUSE_H

int cmd_eval_reuse(int argc, char **argv);

#endif
