/* Request accessors and response ownership. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_internal.h"
#include "json_fast.h"

const char *api_request_query(const api_request *req, const char *key) {
    for (int i = 0; req && i < req->n_query; i++)
        if (!strcmp(req->query[i].key, key)) return req->query[i].value;
    return NULL;
}

const char *api_request_header(const api_request *req, const char *name) {
    for (int i = 0; req && i < req->n_headers; i++)
        if (!strcasecmp(req->headers[i].key, name)) return req->headers[i].value;
    return NULL;
}

void api_response_free(api_response *r) {
    if (!r) return;
    free(r->body);
    for (int i = 0; i < r->n_headers; i++) {
        free(r->headers[i].key);
        free(r->headers[i].value);
    }
    memset(r, 0, sizeof(*r));
}

bool api_request_is_type(const api_request *req, const char *type) {
    const char *ct = api_request_header(req, "Content-Type");
    if (!ct) return false;
    while (isspace((unsigned char)*ct)) ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && isspace((unsigned char)ct[n - 1])) n--;
    return n == strlen(type) && !strncasecmp(ct, type, n);
}

int api_json_parse(const api_request *req, json_t **out, api_error *e) {
    return api_json_parse_packed(req, NULL, out, NULL, e);
}

int api_json_parse_packed(const api_request *req, const char *key, json_t **out, json_fast_packed *packed,
                          api_error *e) {
    *out = NULL;
    if (packed) memset(packed, 0, sizeof(*packed));
    if (!req->body || req->body_len == 0) return api_error_set(e, "invalid_json", "the request body is empty");
    json_error_t je;
    const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
    json_t *root = packed ? json_fast_or_jansson_packed(req->body, req->body_len, flags, key, packed, &je)
                          : json_fast_or_jansson(req->body, req->body_len, flags, &je);
    if (!root)
        return api_error_set(e, "invalid_json", "malformed JSON at line %d, column %d: %s", je.line, je.column,
                             je.text);
    *out = root;
    return 0;
}
