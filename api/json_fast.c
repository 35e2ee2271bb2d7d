/* Recursive descent over the buffer; every failure declines (NULL) and
 * leaves the diagnosis to Jansson. */
#include "json_fast.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"

#define DEPTH_MAX 64
#define KEY_MAX 256

typedef struct parser {
    const char *p, *end;
    size_t flags;
    int depth;
} parser;

static void skip_space(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) ps->p++;
}

static json_t *parse_value(parser *ps);

/* A string of printable ASCII and the simple escapes into out (size
 * bytes); false otherwise (Jansson decides then). */
static bool parse_string(parser *ps, char *out, size_t size, size_t *len) {
    if (ps->p >= ps->end || *ps->p != '"') return false;
    ps->p++;
    size_t n = 0;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') {
            out[n] = '\0';
            *len = n;
            return true;
        }
        if (c < 0x20 || c >= 0x80) return false;
        if (c == '\\') {
            if (ps->p >= ps->end) return false;
            switch (*ps->p++) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default: return false; /* \u and invalid escapes */
            }
        }
        if (n + 1 >= size) return false;
        out[n++] = (char)c;
    }
    return false;
}

static json_t *parse_number(parser *ps) {
    double d;
    bool integer;
    const char *start = ps->p, *end;
    if (!decimal_parse_json(ps->p, (size_t)(ps->end - ps->p), &d, &integer, &end)) return NULL;
    ps->p = end;
    if (!integer) return isinf(d) ? NULL : json_real(d); /* overflow: Jansson's error */
    /* An integer as Jansson reads it (strtoll), declining beyond 64 bits. */
    bool neg = *start == '-';
    uint64_t v = 0;
    for (const char *q = start + neg; q < end; q++) {
        if (v > (UINT64_MAX - 9) / 10) return NULL;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return NULL;
    return json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
}

static json_t *parse_array(parser *ps) {
    ps->p++; /* [ */
    json_t *arr = json_array();
    if (!arr) return NULL;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return arr;
    }
    for (;;) {
        json_t *v = parse_value(ps);
        if (!v || json_array_append_new(arr, v)) break;
        skip_space(ps);
        if (ps->p >= ps->end) break;
        char c = *ps->p++;
        if (c == ']') return arr;
        if (c != ',') break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *parse_object(parser *ps) {
    ps->p++; /* { */
    json_t *obj = json_object();
    if (!obj) return NULL;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    char key[KEY_MAX];
    for (;;) {
        size_t klen;
        skip_space(ps);
        if (!parse_string(ps, key, sizeof key, &klen) || strlen(key) != klen) break; /* no NUL in keys */
        if ((ps->flags & JSON_REJECT_DUPLICATES) && json_object_get(obj, key)) break;
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p++ != ':') break;
        json_t *v = parse_value(ps);
        if (!v || json_object_set_new(obj, key, v)) break;
        skip_space(ps);
        if (ps->p >= ps->end) break;
        char c = *ps->p++;
        if (c == '}') return obj;
        if (c != ',') break;
    }
    json_decref(obj);
    return NULL;
}

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) return false;
    ps->p += n;
    return true;
}

static json_t *parse_value(parser *ps) {
    skip_space(ps);
    if (ps->p >= ps->end) return NULL;
    json_t *v = NULL;
    switch (*ps->p) {
    case '[':
    case '{':
        if (++ps->depth > DEPTH_MAX) return NULL;
        v = *ps->p == '[' ? parse_array(ps) : parse_object(ps);
        ps->depth--;
        return v;
    case '"': {
        char buf[KEY_MAX];
        size_t n;
        return parse_string(ps, buf, sizeof buf, &n) ? json_stringn(buf, n) : NULL;
    }
    case 't': return literal(ps, "true") ? json_true() : NULL;
    case 'f': return literal(ps, "false") ? json_false() : NULL;
    case 'n': return literal(ps, "null") ? json_null() : NULL;
    default: return parse_number(ps);
    }
}

json_t *json_fast_loadb(const char *buf, size_t len, size_t flags) {
    if (!buf) return NULL;
    parser ps = {.p = buf, .end = buf + len, .flags = flags};
    skip_space(&ps);
    if (!(flags & JSON_DECODE_ANY) && (ps.p >= ps.end || (*ps.p != '[' && *ps.p != '{'))) return NULL;
    json_t *root = parse_value(&ps);
    if (!root) return NULL;
    skip_space(&ps);
    if (ps.p != ps.end) { /* trailing bytes: Jansson's error */
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *json_fast_or_jansson(const char *buf, size_t len, size_t flags, json_error_t *error) {
    json_t *root = json_fast_loadb(buf, len, flags);
    return root ? root : json_loadb(buf, len, flags, error);
}
