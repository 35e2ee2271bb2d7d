/* `moda replace`: module replacement (docs/design.md section 2) as an
 * experiment. One class of a weak model is patched with a strong model's
 * module for the same class and a calibration layer is trained on top;
 * the command reports what that does to test accuracy. argv[1] is the
 * subcommand. Returns the exit code: 0, 1 (runtime error) or 2 (usage). */
#ifndef MODA_CMD_REPLACE_H
#define MODA_CMD_REPLACE_H

#include <stddef.h>

#include "calibration.h"
#include "registry.h"
#include "status.h"

int cmd_replace(int argc, char **argv);

typedef struct replace_options {
    const char *reg;        /* registry of the weak model (and of the strong one, unless strong_reg) */
    const char *strong_reg; /* NULL: reg */
    const char *weak, *strong;
    const char *cls;        /* the weak model's class: a name or an index */
    const char *data_dir;   /* NULL: the recorded location (model_data.h) */
    const char *dataset;    /* --dataset: must be the models' kind; NULL: theirs */
    float tau;              /* the module's threshold */
    calibration_options calib;
    registry_remote_options remote; /* for registry URLs; zeroed: the defaults */
} replace_options;

/* The rows of the result: test accuracy of each way of using the models. */
enum { REPLACE_WEAK, REPLACE_PATCHED, REPLACE_WEAK_CALIBRATED, REPLACE_PATCHED_CALIBRATED, REPLACE_ROWS };

typedef struct replace_result {
    int cls, k, train_n;
    char class_name[128];
    double module_params;         /* the module's share of the strong model's parameters */
    double acc[REPLACE_ROWS][2];  /* % of the test set, and of its samples of the class */
    double loss[2];               /* final training loss: weak calibrated, patched calibrated */
} replace_result;

/* The experiment itself, without printing. An unknown class or bad
 * arguments are MODA_ERR_ARG; err says what went wrong. */
moda_status replace_run(const replace_options *o, replace_result *res, char *err, size_t errlen);

#endif
