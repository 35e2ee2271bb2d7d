/* Per-epoch training records and the files made from them: a CSV table
 * and an SVG plot of the loss and accuracy curves. */
#ifndef MODA_REPORT_H
#define MODA_REPORT_H

#include <stddef.h>

#include "status.h"

typedef struct epoch_record {
    int epoch; /* 1-based */
    float lr;
    float train_loss, train_acc; /* running over the epoch's batches */
    float test_loss, test_acc;
    float ce, aff, dis, com;     /* epoch means: CE, L_aff = 1 - a, L_dis = d, L_com = c */
    float seconds;               /* training + evaluation wall time */
} epoch_record;

/* Both files are written atomically. */
moda_status report_write_csv(const char *path, const epoch_record *h, int n, char *err, size_t errlen);
moda_status report_write_svg(const char *path, const char *title, const epoch_record *h, int n, char *err,
                             size_t errlen);

#endif
