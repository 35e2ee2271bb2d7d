/* Training progress: on a terminal a live bar per epoch (batches, images/s,
 * ETA, running loss and accuracy), otherwise nothing until the epoch's
 * summary line, so logs stay one line per epoch. */
#ifndef MODA_PROGRESS_H
#define MODA_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct progress {
    FILE *out;
    bool live;       /* out is a terminal */
    int epoch, epochs, total;
    double start, last_draw;
} progress;

double progress_now(void); /* monotonic seconds */
void progress_begin(progress *p, FILE *out, int epoch, int epochs, int total_batches, bool quiet);
void progress_update(progress *p, int done, long images, double loss, double acc);
void progress_end(progress *p); /* clears the live bar */

#endif
