#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool parse_value(const arg_spec *s, const char *text) {
    char *end = NULL;
    errno = 0;
    switch (s->type) {
    case ARG_STRING:
        *(const char **)s->value = text;
        return true;
    case ARG_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < -2147483647L || v > 2147483647L) break;
        *(int *)s->value = (int)v;
        return true;
    }
    case ARG_U64: {
        if (text[0] == '-') break;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end) break;
        *(uint64_t *)s->value = (uint64_t)v;
        return true;
    }
    case ARG_FLOAT: {
        float v = strtof(text, &end);
        if (errno || end == text || *end || !isfinite(v)) break;
        *(float *)s->value = v;
        return true;
    }
    case ARG_BOOL:
        break;
    }
    fprintf(stderr, "moda: invalid value '%s' for --%s\n", text, s->name);
    return false;
}

bool args_parse(int argc, char **argv, int first, const arg_spec *specs, int n_specs, const char **positional,
                int max_positional, int *n_positional, bool *help) {
    int npos = 0;
    *help = false;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (npos >= max_positional) {
                fprintf(stderr, "moda: unexpected argument '%s'\n", a);
                return false;
            }
            positional[npos++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const arg_spec *s = NULL;
        for (int k = 0; k < n_specs; k++)
            if (strlen(specs[k].name) == len && strncmp(specs[k].name, name, len) == 0) s = &specs[k];
        if (!s) {
            fprintf(stderr, "moda: unknown option '--%.*s'\n", (int)len, name);
            return false;
        }
        if (s->type == ARG_BOOL) {
            if (eq) {
                fprintf(stderr, "moda: --%s takes no value\n", s->name);
                return false;
            }
            *(bool *)s->value = true;
            continue;
        }
        const char *text = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!text) {
            fprintf(stderr, "moda: --%s needs a value\n", s->name);
            return false;
        }
        if (!parse_value(s, text)) return false;
    }
    if (n_positional) *n_positional = npos;
    return true;
}

void args_print_options(FILE *f, const arg_spec *specs, int n_specs) {
    for (int k = 0; k < n_specs; k++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", specs[k].name, specs[k].meta ? " " : "",
                 specs[k].meta ? specs[k].meta : "");
        fprintf(f, "  %-24s %s\n", left, specs[k].help);
    }
}
