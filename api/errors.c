/* The wire contract's error codes and their HTTP statuses, in one table. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct code_status {
    const char *code;
    int status;
} code_status;

static const code_status CODE_TABLE[] = {
    {"bad_request", 400},          {"invalid_json", 400},       {"invalid_type", 400},
    {"invalid_shape", 400},        {"invalid_input", 400},      {"empty_classes", 400},
    {"duplicate_class", 400},      {"invalid_threshold", 400},  {"invalid_id", 400},
    {"too_many_classes", 400},     {"batch_too_large", 400},    {"invalid_image", 400},
    {"invalid_calibration", 400},  {"invalid_name", 400},
    {"unauthorized", 401},
    {"not_found", 404},
    {"unknown_model", 404},        {"unknown_class", 404},      {"not_cached", 404},
    {"unknown_job", 404},
    {"method_not_allowed", 405},
    {"model_exists", 409},         {"read_only_registry", 409}, {"job_finished", 409},
    {"body_too_large", 413},       {"image_too_large", 413},
    {"unsupported_media_type", 415},
    {"invalid_combination", 422},  {"class_not_in_parent", 422}, {"incompatible_models", 422},
    {"not_patched", 422},          {"data_unavailable", 422},   {"data_mismatch", 422},
    {"non_finite_output", 422}, {"replace_failed", 422},       {"reload_failed", 422},       {"registry_write_failed", 422}, {"cancelled", 422},
    {"queue_full", 429},
    {"internal", 500},             {"not_ready", 503},          {"deadline_exceeded", 504},
    {"overloaded", 503},           {"queue_timeout", 503},
};

int api_error_status(const char *code) {
    for (size_t i = 0; code && i < sizeof(CODE_TABLE) / sizeof(CODE_TABLE[0]); i++)
        if (!strcmp(CODE_TABLE[i].code, code)) return CODE_TABLE[i].status;
    return 500;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one
 * (a stray or missing continuation byte, an overlong form, a surrogate,
 * or beyond U+10FFFF: what Jansson rejects). */
static int utf8_sequence(const unsigned char *s) {
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n <= 1) return n;
    unsigned cp = c & (0x7Fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Messages quote request text (paths, names, headers) that may be any
 * bytes, and truncation may split a character: replace every byte that is
 * not part of valid UTF-8 with '?' so the message is always valid JSON. */
static void utf8_sanitize(char *msg) {
    for (unsigned char *s = (unsigned char *)msg; *s;) {
        int n = utf8_sequence(s);
        if (n) {
            s += n;
        } else {
            *s++ = '?';
        }
    }
}

int api_error_set(api_error *e, const char *code, const char *fmt, ...) {
    if (!e) return -1;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* The body of last resort: no allocation can fail on this path. */
static void response_oom(api_response *resp) {
    static const char body[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
    free(resp->body);
    resp->status = 500;
    resp->body = malloc(sizeof body);
    if (resp->body) memcpy(resp->body, body, sizeof body);
    resp->body_len = resp->body ? sizeof body - 1 : 0;
    resp->error_code = "internal";
}

void api_response_json(api_response *resp, int status, json_t *root) {
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    free(resp->body);
    /* 9 significant digits round-trip every float32 exactly. */
    resp->body = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    json_decref(root);
    if (!resp->body) response_oom(resp);
}

/* Both error shapes: {"error":{"code","message"}} (v1) or {"error":
 * message} (v2). The message is made valid UTF-8 here, whoever wrote it. */
static void respond_error(api_response *resp, const api_error *e, bool v2) {
    const char *code = e && e->code ? e->code : "internal";
    char msg[API_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", e && e->code ? e->message : "unexpected failure");
    utf8_sanitize(msg);
    json_t *root = v2 ? json_pack("{s:s}", "error", msg) : json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    int status = api_error_status(code);
    api_response_json(resp, status, root);
    if (resp->status == status) resp->error_code = code; /* else out of memory: "internal" */
}

void api_response_error(api_response *resp, const api_error *e) { respond_error(resp, e, false); }

static void respond_errorv(api_response *resp, bool v2, const char *code, const char *fmt, va_list ap) {
    api_error e = {.code = code};
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    respond_error(resp, &e, v2);
}

void api_response_errorf(api_response *resp, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    respond_errorv(resp, false, code, fmt, ap);
    va_end(ap);
}

void api_response_error_v2(api_response *resp, const api_error *e) { respond_error(resp, e, true); }

void api_response_errorf_v2(api_response *resp, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    respond_errorv(resp, true, code, fmt, ap);
    va_end(ap);
}

bool api_response_add_header(api_response *resp, const char *key, const char *value) {
    if (resp->n_headers >= API_HEADERS_MAX) return false;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return false;
    }
    resp->headers[resp->n_headers].key = k;
    resp->headers[resp->n_headers].value = v;
    resp->n_headers++;
    return true;
}
