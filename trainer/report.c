#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

void report_text_printf(report_text *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

moda_status report_text_write(report_text *b, const char *path, char *err, size_t errlen) {
    moda_status s = b->oom ? MODA_ERR_NOMEM : fileio_write_atomic(path, b->p, b->len, err, errlen);
    free(b->p);
    *b = (report_text){0};
    return s;
}

moda_status report_write_csv(const char *path, const epoch_record *h, int n, char *err, size_t errlen) {
    report_text b = {0};
    report_text_printf(&b, "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,ce,l_aff,l_dis,l_com\n");
    for (int i = 0; i < n; i++)
        report_text_printf(&b, "%d,%.6g,%.6f,%.4f,%.6f,%.4f,%.2f,%.6f,%.6f,%.6f,%.6f\n", h[i].epoch, h[i].lr,
                  h[i].train_loss, 100 * h[i].train_acc, h[i].test_loss, 100 * h[i].test_acc, h[i].seconds, h[i].ce,
                  h[i].aff, h[i].dis, h[i].com);
    return report_text_write(&b, path, err, errlen);
}

/* One panel: two series against epoch, with axes, ticks and a legend. */
static void svg_panel(report_text *b, double x0, double y0, double w, double hgt, const char *label, const epoch_record *h,
                      int n, int which) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double a = which ? 100 * h[i].train_acc : h[i].ce;
        double c = which ? 100 * h[i].test_acc : h[i].test_loss;
        lo = fmin(lo, fmin(a, c));
        hi = fmax(hi, fmax(a, c));
    }
    if (!(hi > lo)) {
        lo = isfinite(lo) ? lo - 1 : 0;
        hi = lo + 2;
    }
    double pad = 0.05 * (hi - lo);
    lo -= pad;
    hi += pad;
    int xmax = n > 1 ? h[n - 1].epoch : 2;
    int xmin = n > 0 ? h[0].epoch : 1;
    if (xmax == xmin) xmax = xmin + 1;
#define PX(e) (x0 + (double)((e) - xmin) / (xmax - xmin) * w)
#define PY(v) (y0 + hgt - ((v) - lo) / (hi - lo) * hgt)
    report_text_printf(b, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#888'/>\n", x0, y0, w,
              hgt);
    report_text_printf(b, "<text x='%.1f' y='%.1f' font-size='14' text-anchor='middle'>%s</text>\n", x0 + w / 2, y0 - 8,
              label);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4;
        report_text_printf(b, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>\n", x0, PY(v), x0 + w, PY(v));
        report_text_printf(b, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%.3g</text>\n", x0 - 4, PY(v) + 4,
                  v);
    }
    for (int i = 0; i < n; i++)
        if (n <= 20 || i % (n / 10) == 0)
            report_text_printf(b, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%d</text>\n",
                      PX(h[i].epoch), y0 + hgt + 16, h[i].epoch);
    report_text_printf(b, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>epoch</text>\n", x0 + w / 2,
              y0 + hgt + 34);
    const char *colors[2] = {"#1f77b4", "#d62728"}, *names[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        report_text_printf(b, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[s]);
        for (int i = 0; i < n; i++) {
            double v = which ? 100 * (s ? h[i].test_acc : h[i].train_acc) : (s ? h[i].test_loss : h[i].ce);
            report_text_printf(b, "%.1f,%.1f ", PX(h[i].epoch), PY(v));
        }
        report_text_printf(b, "'/>\n");
        report_text_printf(b, "<text x='%.1f' y='%.1f' font-size='12' fill='%s'>%s</text>\n", x0 + w - 60,
                  y0 + 18 + 16 * s, colors[s], names[s]);
    }
#undef PX
#undef PY
}

moda_status report_write_svg(const char *path, const char *title, const epoch_record *h, int n, char *err,
                             size_t errlen) {
    report_text b = {0};
    report_text_printf(&b, "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='380' font-family='sans-serif'>\n");
    report_text_printf(&b, "<rect width='100%%' height='100%%' fill='white'/>\n");
    report_text_printf(&b, "<text x='450' y='22' font-size='16' text-anchor='middle'>");
    for (const char *c = title; *c; c++) { /* escape for XML */
        if (*c == '<') report_text_printf(&b, "&lt;");
        else if (*c == '>') report_text_printf(&b, "&gt;");
        else if (*c == '&') report_text_printf(&b, "&amp;");
        else report_text_printf(&b, "%c", *c);
    }
    report_text_printf(&b, "</text>\n");
    svg_panel(&b, 70, 60, 340, 260, "cross-entropy", h, n, 0);
    svg_panel(&b, 520, 60, 340, 260, "accuracy (%)", h, n, 1);
    report_text_printf(&b, "</svg>\n");
    return report_text_write(&b, path, err, errlen);
}
