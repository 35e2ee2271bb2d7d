/* Placeholder API: routes nothing yet. */
#include "api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct api {
    int ready;
};

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

int api_new(const api_config *cfg, api **out, char *err, size_t errlen) {
    (void)cfg;
    (void)err;
    (void)errlen;
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -1;
}

void api_free(api *a) { free(a); }

void api_handle(api *a, int worker, const api_request *req, api_response *resp) {
    (void)a;
    (void)worker;
    (void)req;
    memset(resp, 0, sizeof(*resp));
    resp->status = 404;
    strcpy(resp->content_type, "application/json");
    resp->body = strdup("{\"error\":{\"code\":\"not_found\",\"message\":\"no such route\"}}");
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    resp->error_code = "not_found";
}

void api_set_ready(api *a, bool ready) { a->ready = ready; }
