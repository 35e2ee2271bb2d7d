/* The module explorer: a page served at / (and /ui/), with its script,
 * style sheet and test images at /ui/<file>. It reads the v1 API like any
 * client. */
#ifndef MODA_API_UI_H
#define MODA_API_UI_H

#include "api.h"

#define UI_PAGE "index.html"

/* Fills *resp (zeroed by the caller) with the embedded file `name`: 200
 * with its media type, 304 without a body when If-None-Match names its
 * ETag, or 404 not_found. Every answer is revalidated (no-cache). */
void ui_file(const api_request *req, const char *name, api_response *resp);

#endif
