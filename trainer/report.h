/* Per-epoch training records and the files made from them: a CSV table
 * and an SVG plot of the loss and accuracy curves; and the text buffer
 * that every CSV and SVG report of the CLI is built in. */
#ifndef MODA_REPORT_H
#define MODA_REPORT_H

#include <stdbool.h>
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

/* A text file built in memory, then written atomically. Grows as needed;
 * an allocation failure is remembered and reported by the write. */
typedef struct report_text {
    char *p; /* (cap), owned */
    size_t len, cap;
    bool oom;
} report_text;

void report_text_printf(report_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write the text to path atomically and free it (MODA_ERR_NOMEM when a
 * printf ran out of memory). */
moda_status report_text_write(report_text *t, const char *path, char *err, size_t errlen);

/* Both files are written atomically. */
moda_status report_write_csv(const char *path, const epoch_record *h, int n, char *err, size_t errlen);
moda_status report_write_svg(const char *path, const char *title, const epoch_record *h, int n, char *err,
                             size_t errlen);

#endif
