#include "ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "ui_assets.h"

/* The page loads nothing from elsewhere; saying so stops injected content
 * from doing otherwise. blob: shows a dropped image before it is sent. */
#define UI_CSP                                                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; " \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const ui_asset *ui_find(const char *name) {
    for (size_t i = 0; i < UI_ASSET_COUNT; i++)
        if (!strcmp(UI_ASSETS[i].name, name)) return &UI_ASSETS[i];
    return NULL;
}

/* If-None-Match lists ETags (possibly weak, W/"...") or is "*". */
static bool etag_matches(const char *if_none_match, const char *etag) {
    return if_none_match && (!strcmp(if_none_match, "*") || strstr(if_none_match, etag));
}

void ui_file(const api_request *req, const char *name, api_response *resp) {
    const ui_asset *f = ui_find(name);
    if (!f) {
        api_response_errorf(resp, "not_found", "the page has no file \"%.80s\"", name);
        return;
    }
    /* no-cache: the browser keeps the file but asks each time, so a new
     * server binary's page is never mixed with an old script. */
    if (!api_response_add_header(resp, "ETag", f->etag) || !api_response_add_header(resp, "Cache-Control", "no-cache") ||
        !api_response_add_header(resp, "X-Content-Type-Options", "nosniff") ||
        (!strcmp(name, UI_PAGE) && !api_response_add_header(resp, "Content-Security-Policy", UI_CSP))) {
        api_response_free(resp);
        api_response_errorf(resp, "internal", "out of memory");
        return;
    }
    if (etag_matches(api_request_header(req, "If-None-Match"), f->etag)) {
        resp->status = 304;
        return;
    }
    resp->body = malloc(f->size);
    if (!resp->body) {
        api_response_free(resp);
        api_response_errorf(resp, "internal", "out of memory");
        return;
    }
    memcpy(resp->body, f->data, f->size);
    resp->body_len = f->size;
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", f->content_type);
}
