#include "id.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_CLASS_MAX 100000000 /* more digits than any class index */

float api_tau_canonical(float tau) {
    char text[32];
    snprintf(text, sizeof text, "%g", (double)tau);
    return strtof(text, NULL);
}

bool api_id_format(char *buf, size_t len, const char *model, const int *classes, int n, float tau,
                   compose_mode mode) {
    size_t off = 0;
    int w = snprintf(buf, len, "%s~", model);
    if (w < 0 || (size_t)w >= len) return false;
    off = (size_t)w;
    for (int i = 0; i < n; i++) {
        w = snprintf(buf + off, len - off, i ? "-%d" : "%d", classes[i]);
        if (w < 0 || (size_t)w >= len - off) return false;
        off += (size_t)w;
    }
    w = snprintf(buf + off, len - off, "~%g", (double)tau);
    if (w < 0 || (size_t)w >= len - off) return false;
    off += (size_t)w;
    if (mode == COMPOSE_TIED) return true;
    w = snprintf(buf + off, len - off, "~%s", compose_mode_name(mode));
    return w >= 0 && (size_t)w < len - off;
}

int api_id_parse(const char *id, char model[REGISTRY_NAME_MAX + 1], int **classes, int *n, float *tau,
                 compose_mode *mode, api_error *e) {
    *classes = NULL;
    *n = 0;
    *mode = COMPOSE_TIED;
    const char *t1 = strchr(id, '~');
    const char *t2 = t1 ? strchr(t1 + 1, '~') : NULL;
    if (!t1 || !t2)
        return api_error_set(e, "unknown_model", "\"%.80s\" is not a composed id (<model>~<i>-<j>-...~<tau>)", id);
    size_t mlen = (size_t)(t1 - id);
    if (mlen == 0 || mlen > REGISTRY_NAME_MAX)
        return api_error_set(e, "unknown_model", "id \"%.80s\": the model name is empty or too long", id);
    memcpy(model, id, mlen);
    model[mlen] = '\0';
    /* Classes: decimal indices separated by single '-'. */
    int cap = 1;
    for (const char *p = t1 + 1; p < t2; p++) cap += *p == '-';
    int *cls = malloc((size_t)cap * sizeof(int));
    if (!cls) return api_error_set(e, "internal", "out of memory");
    int count = 0;
    const char *p = t1 + 1;
    while (p < t2) {
        long v = 0;
        const char *start = p;
        while (p < t2 && isdigit((unsigned char)*p) && v <= ID_CLASS_MAX) v = v * 10 + (*p++ - '0');
        if (p == start || v > ID_CLASS_MAX || (p < t2 && *p != '-') || (p < t2 && p + 1 == t2)) {
            free(cls);
            return api_error_set(e, "unknown_model", "id \"%.80s\": the classes must be indices joined by '-'", id);
        }
        cls[count++] = (int)v;
        if (p < t2) p++; /* the '-' */
    }
    if (count == 0) {
        free(cls);
        return api_error_set(e, "unknown_model", "id \"%.80s\" names no classes", id);
    }
    /* Threshold, then the mode suffix of a per-layer id. */
    const char *t3 = strchr(t2 + 1, '~');
    compose_mode m = COMPOSE_TIED;
    if (t3 && (!compose_mode_parse(t3 + 1, &m) || m == COMPOSE_TIED)) {
        free(cls);
        return api_error_set(e, "unknown_model", "id \"%.80s\": the suffix after the threshold must be \"~%s\"", id,
                             compose_mode_name(COMPOSE_PER_LAYER));
    }
    size_t tlen = t3 ? (size_t)(t3 - (t2 + 1)) : strlen(t2 + 1);
    char *ts = malloc(tlen + 1);
    if (!ts) {
        free(cls);
        return api_error_set(e, "internal", "out of memory");
    }
    memcpy(ts, t2 + 1, tlen);
    ts[tlen] = '\0';
    char *end = NULL;
    errno = 0;
    float v = strtof(ts, &end);
    bool number = *ts && !isspace((unsigned char)*ts) && !*end && !errno && isfinite(v);
    free(ts);
    if (!number) {
        free(cls);
        return api_error_set(e, "unknown_model", "id \"%.80s\": the threshold after the second '~' is not a number", id);
    }
    *classes = cls;
    *n = count;
    *tau = api_tau_canonical(v);
    *mode = m;
    return 0;
}
