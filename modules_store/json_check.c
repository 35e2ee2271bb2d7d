#include "json_check.h"
#include "registry.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

void jc_init(jcheck *c, const char *file, char *err, size_t errlen) {
    c->file = file ? file : "JSON document";
    c->err = err;
    c->errlen = errlen;
    c->status = MODA_OK;
}

bool jc_fail(jcheck *c, moda_status s, const char *fmt, ...) {
    if (c->status != MODA_OK) return false;
    c->status = s;
    if (c->err && c->errlen) {
        int n = snprintf(c->err, c->errlen, "%s: ", c->file);
        if (n >= 0 && (size_t)n < c->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

const char *jc_kind_name(jkind k) {
    switch (k) {
    case JK_ANY: return "a value";
    case JK_OBJECT: return "an object";
    case JK_ARRAY: return "an array";
    case JK_STRING: return "a string";
    case JK_INT: return "an integer";
    case JK_NUMBER: return "a number";
    case JK_BOOL: return "a boolean";
    }
    return "?";
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bool is_kind(const json_t *v, jkind k) {
    switch (k) {
    case JK_ANY: return true;
    case JK_OBJECT: return json_is_object(v);
    case JK_ARRAY: return json_is_array(v);
    case JK_STRING: return json_is_string(v);
    case JK_INT: return json_is_integer(v);
    case JK_NUMBER: return json_is_number(v);
    case JK_BOOL: return json_is_boolean(v);
    }
    return false;
}

json_t *jc_get(jcheck *c, json_t *obj, const char *where, const char *key, jkind kind) {
    if (!jc_ok(c)) return NULL;
    const char *dot = where && where[0] ? "." : "";
    if (!where) where = "";
    if (!json_is_object(obj)) {
        /* The parent's own check normally catches this first. */
        jc_fail(c, MODA_ERR_FORMAT, "\"%s\" is not an object", where[0] ? where : "document");
        return NULL;
    }
    json_t *v = json_object_get(obj, key);
    if (!v) {
        jc_fail(c, MODA_ERR_FORMAT, "missing key \"%s%s%s\"", where, dot, key);
        return NULL;
    }
    if (!is_kind(v, kind)) {
        jc_fail(c, MODA_ERR_FORMAT, "wrong type for \"%s%s%s\": expected %s, found %s", where, dot, key,
                jc_kind_name(kind), type_name(v));
        return NULL;
    }
    return v;
}

json_t *jc_at(jcheck *c, json_t *arr, const char *where, size_t i, jkind kind) {
    if (!jc_ok(c)) return NULL;
    if (!where) where = "";
    json_t *v = json_array_get(arr, i);
    if (!v) {
        jc_fail(c, MODA_ERR_FORMAT, "missing element \"%s[%zu]\"", where, i);
        return NULL;
    }
    if (!is_kind(v, kind)) {
        jc_fail(c, MODA_ERR_FORMAT, "wrong type for \"%s[%zu]\": expected %s, found %s", where, i,
                jc_kind_name(kind), type_name(v));
        return NULL;
    }
    return v;
}

json_t *jc_array(jcheck *c, json_t *obj, const char *where, const char *key, long n) {
    json_t *a = jc_get(c, obj, where, key, JK_ARRAY);
    if (a && n >= 0 && json_array_size(a) != (size_t)n) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s%s%s\" has %zu elements, expected %ld", where ? where : "",
                where && where[0] ? "." : "", key, json_array_size(a), n);
        return NULL;
    }
    return a;
}

bool jc_int(jcheck *c, json_t *obj, const char *where, const char *key, long long lo, long long hi,
            long long *out) {
    json_t *v = jc_get(c, obj, where, key, JK_INT);
    if (!v) return false;
    long long x = (long long)json_integer_value(v);
    if (x < lo || x > hi)
        return jc_fail(c, MODA_ERR_FORMAT, "\"%s%s%s\" is %lld, outside [%lld, %lld]", where ? where : "",
                       where && where[0] ? "." : "", key, x, lo, hi);
    *out = x;
    return true;
}

bool jc_number(jcheck *c, json_t *obj, const char *where, const char *key, double lo, double hi, double *out) {
    json_t *v = jc_get(c, obj, where, key, JK_NUMBER);
    if (!v) return false;
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return jc_fail(c, MODA_ERR_FORMAT, "\"%s%s%s\" is %g, outside [%g, %g]", where ? where : "",
                       where && where[0] ? "." : "", key, x, lo, hi);
    *out = x;
    return true;
}

const char *jc_string(jcheck *c, json_t *obj, const char *where, const char *key) {
    return json_string_value(jc_get(c, obj, where, key, JK_STRING));
}

bool jc_number_at(jcheck *c, json_t *arr, const char *where, size_t i, double lo, double hi, double *out) {
    json_t *v = jc_at(c, arr, where, i, JK_NUMBER);
    if (!v) return false;
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return jc_fail(c, MODA_ERR_FORMAT, "\"%s[%zu]\" is %g, outside [%g, %g]", where ? where : "", i, x, lo,
                       hi);
    *out = x;
    return true;
}

json_t *jc_load_document(jcheck *c, const char *text, size_t len) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        jc_fail(c, MODA_ERR_FORMAT, "not valid JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    if (!json_is_object(root)) jc_fail(c, MODA_ERR_FORMAT, "not a JSON object");
    long long format = 0;
    if (jc_int(c, root, "", "format", 0, 1LL << 30, &format) && format != REGISTRY_FORMAT)
        jc_fail(c, MODA_ERR_FORMAT, "unsupported format %lld (this build reads format %d)", format, REGISTRY_FORMAT);
    return root;
}
