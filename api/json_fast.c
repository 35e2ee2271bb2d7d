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
    const char *pack_key;     /* NULL: pack nothing */
    bool pack_tried;          /* the first member named pack_key came: no other is tried */
    json_fast_packed *packed; /* its array, when it packed */
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

/* The integer in [start, end) as strtoll reads it; false beyond 64 bits,
 * where Jansson reports an error. */
static bool integer_value(const char *start, const char *end, json_int_t *out) {
    bool neg = *start == '-';
    uint64_t v = 0;
    for (const char *q = start + neg; q < end; q++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (json_int_t)(0 - v) : (json_int_t)v;
    return true;
}

/* A number as Jansson's tree holds it: a real, or an integer when the
 * text has neither fraction nor exponent. false: not a number, an
 * overflowing real or an integer beyond 64 bits (Jansson's errors). */
static bool read_number(parser *ps, double *d, bool *integer, json_int_t *i) {
    const char *start = ps->p, *end;
    if (!decimal_parse_json(ps->p, (size_t)(ps->end - ps->p), d, integer, &end)) return false;
    ps->p = end;
    if (!*integer) return !isinf(*d);
    return integer_value(start, end, i);
}

static json_t *parse_number(parser *ps) {
    double d;
    bool integer;
    json_int_t i;
    if (!read_number(ps, &d, &integer, &i)) return NULL;
    return integer ? json_integer(i) : json_real(d);
}

/* ---- packed arrays -------------------------------------------------------- */

static bool pack_push(json_fast_packed *pk, size_t *cap, double v) {
    if (pk->count == *cap) {
        size_t n = *cap ? 2 * *cap : 1024;
        double *grown = realloc(pk->values, n * sizeof(double));
        if (!grown) return false;
        pk->values = grown;
        *cap = n;
    }
    pk->values[pk->count++] = v;
    return true;
}

/* The array at ps->p (its '['), at depth d, into pk: numbers at depth
 * ndim - 1 (set by the first number), arrays above it, and every array at
 * a depth as long as the first one closed there. false: not such an
 * array. */
static bool pack_array(parser *ps, int d, json_fast_packed *pk, size_t *cap) {
    if (d >= JSON_FAST_PACK_DIMS) return false;
    ps->p++; /* [ */
    int len = 0;
    for (;;) {
        skip_space(ps);
        if (ps->p >= ps->end) return false;
        if (*ps->p == '[') {
            if (pk->ndim && d + 1 >= pk->ndim) return false;
            if (!pack_array(ps, d + 1, pk, cap)) return false;
        } else {
            if (!pk->ndim) pk->ndim = d + 1;
            if (pk->ndim != d + 1) return false;
            double v;
            bool integer;
            json_int_t i;
            if (!read_number(ps, &v, &integer, &i)) return false;
            if (!pack_push(pk, cap, integer ? (double)i : v)) return false; /* json_number_value's double */
        }
        if (len == INT32_MAX) return false;
        len++;
        skip_space(ps);
        if (ps->p >= ps->end) return false;
        char c = *ps->p++;
        if (c == ']') break;
        if (c != ',') return false;
    }
    if (!pk->shape[d]) pk->shape[d] = len;
    return pk->shape[d] == len;
}

/* The member value at ps->p packed, or NULL with ps->p where it was when
 * it is no such array. */
static json_t *try_pack(parser *ps) {
    skip_space(ps);
    if (ps->p >= ps->end || *ps->p != '[') return NULL;
    const char *start = ps->p;
    json_fast_packed pk = {0};
    size_t cap = 0;
    json_t *node = NULL;
    if (pack_array(ps, 0, &pk, &cap) && (node = json_array())) {
        pk.node = node;
        *ps->packed = pk;
        return node;
    }
    free(pk.values);
    ps->p = start;
    return NULL;
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
        json_t *v = NULL;
        if (ps->pack_key && !ps->pack_tried && !strcmp(key, ps->pack_key)) {
            ps->pack_tried = true;
            v = try_pack(ps);
        }
        if (!v) v = parse_value(ps);
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

static json_t *load(parser *ps) {
    skip_space(ps);
    if (!(ps->flags & JSON_DECODE_ANY) && (ps->p >= ps->end || (*ps->p != '[' && *ps->p != '{'))) return NULL;
    json_t *root = parse_value(ps);
    if (!root) return NULL;
    skip_space(ps);
    if (ps->p != ps->end) { /* trailing bytes: Jansson's error */
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *json_fast_loadb(const char *buf, size_t len, size_t flags) {
    if (!buf) return NULL;
    parser ps = {.p = buf, .end = buf + len, .flags = flags};
    return load(&ps);
}

json_t *json_fast_or_jansson(const char *buf, size_t len, size_t flags, json_error_t *error) {
    json_t *root = json_fast_loadb(buf, len, flags);
    return root ? root : json_loadb(buf, len, flags, error);
}

json_t *json_fast_or_jansson_packed(const char *buf, size_t len, size_t flags, const char *key,
                                    json_fast_packed *packed, json_error_t *error) {
    memset(packed, 0, sizeof(*packed));
    json_t *root = NULL;
    if (buf) {
        parser ps = {.p = buf, .end = buf + len, .flags = flags, .pack_key = key, .packed = packed};
        root = load(&ps);
    }
    if (root) return root;
    json_fast_packed_free(packed); /* declined after packing: Jansson's tree holds every value */
    return json_loadb(buf, len, flags, error);
}

void json_fast_packed_free(json_fast_packed *p) {
    if (!p) return;
    free(p->values);
    memset(p, 0, sizeof(*p));
}
