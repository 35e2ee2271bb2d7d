/* `moda replace`: module replacement (docs/design.md section 2) as an
 * experiment. One class of a weak model is patched with a strong model's
 * module for the same class and a calibration layer is trained on top;
 * the command reports what that does to test accuracy. argv[1] is the
 * subcommand. Returns the exit code: 0, 1 (runtime error) or 2 (usage). */
#ifndef MODA_CMD_REPLACE_H
#define MODA_CMD_REPLACE_H

#include <stddef.h>

#include "registry.h"
#include "replace.h"
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
    const char *save;       /* store the patched model under this name in reg; NULL: measure only */
    replace_progress_fn progress;   /* NULL: silent */
    void *ctx;
} replace_options;

/* Opens the registries, loads both models and runs replace_run() on the
 * CPU, then stores the patched model when o->save is set. err says what
 * went wrong. */
moda_status replace_cli_run(const replace_options *o, replace_result *res, char *err, size_t errlen);

#endif
