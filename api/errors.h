/* Error codes of the wire contract and the one table that maps them to
 * HTTP statuses, plus the helpers that turn a JSON document or an error
 * into an api_response. */
#ifndef MODA_API_ERRORS_H
#define MODA_API_ERRORS_H

#include <jansson.h>

#include "api.h"

#define API_ERROR_MSG_MAX 256

/* A failure on its way to the client: a static snake_case code (see
 * api_error_status) and a one-line message. */
typedef struct api_error {
    const char *code; /* static string; NULL while no error */
    char message[API_ERROR_MSG_MAX];
} api_error;

/* Record code and a printf-style message in *e (e may be NULL). Returns -1
 * so callers can `return api_error_set(...)`. */
int api_error_set(api_error *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* HTTP status of a code ("unknown_model" -> 404, ...); 500 for an unknown
 * code. */
int api_error_status(const char *code);

/* Fill resp (zeroed first) with status and the compact dump of root, as
 * application/json. Steals root (json_decref'd). On out of memory the
 * response becomes a 500 with a static body. */
void api_response_json(api_response *resp, int status, json_t *root);

/* {"error":{"code","message"}} with the code's status; sets error_code. */
void api_response_error(api_response *resp, const api_error *e);
/* Same, from a code and a message format. */
void api_response_errorf(api_response *resp, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The Open Inference Protocol's error shape, {"error": "<message>"}, with
 * the code's status; sets error_code. */
void api_response_error_v2(api_response *resp, const api_error *e);
void api_response_errorf_v2(api_response *resp, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
