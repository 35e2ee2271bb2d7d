#include "progress.h"

#include <time.h>
#include <unistd.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_begin(progress *p, FILE *out, int epoch, int epochs, int total_batches, bool quiet) {
    p->out = out;
    p->live = !quiet && out && isatty(fileno(out));
    p->epoch = epoch;
    p->epochs = epochs;
    p->total = total_batches;
    p->start = progress_now();
    p->last_draw = 0;
}

void progress_update(progress *p, int done, long images, double loss, double acc) {
    if (!p->live) return;
    double now = progress_now();
    if (done < p->total && now - p->last_draw < 0.2) return; /* redraw at most 5 times a second */
    p->last_draw = now;
    double el = now - p->start, rate = el > 0 ? images / el : 0;
    double eta = done > 0 ? el * (p->total - done) / done : 0;
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int fill = p->total ? (int)((long)WIDTH * done / p->total) : 0;
    for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(p->out, "\repoch %d/%d [%s] %d/%d  %.0f img/s  ETA %d:%02d  loss %.4f  acc %.2f%%\033[K", p->epoch,
            p->epochs, bar, done, p->total, rate, (int)eta / 60, (int)eta % 60, loss, 100 * acc);
    fflush(p->out);
}

void progress_end(progress *p) {
    if (!p->live) return;
    fprintf(p->out, "\r\033[K");
    fflush(p->out);
}
