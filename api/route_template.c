/* The route template of a path, the label of the per-route latency
 * histogram: a fixed set of strings, so that client-chosen paths (model
 * names, ids, files) cannot grow the metrics without bound. */
#include <string.h>

#include "api.h"

static bool has_prefix(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

const char *api_route_template(const char *path) {
    static const char *const exact[] = {"/",           "/ui/",          "/metrics",         "/v1/models",
                                        "/v1/compose", "/v1/infer",     "/v1/replace",      "/v1/calibrate",
                                        "/v1/jobs",    "/v1/registry/reload", "/v2",           "/v2/health/live",  "/v2/health/ready",
                                        "/v2/models/stats", "/v2/repository/index"};
    if (!path) return "other";
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (!strcmp(path, exact[i])) return exact[i];
    if (has_prefix(path, "/v1/models/")) return "/v1/models/{model}";
    if (has_prefix(path, "/v1/compose/")) return "/v1/compose/{id}";
    if (has_prefix(path, "/v1/jobs/")) return "/v1/jobs/{id}";
    if (has_prefix(path, "/ui/")) return "/ui/{file}";
    if (has_prefix(path, "/v2/repository/models/")) {
        if (has_suffix(path, "/load")) return "/v2/repository/models/{name}/load";
        if (has_suffix(path, "/unload")) return "/v2/repository/models/{name}/unload";
    }
    if (has_prefix(path, "/v2/models/")) {
        /* The versions/{v} forms count with the plain ones. */
        static const char *const actions[] = {"infer", "ready", "config", "stats"};
        static const char *const templates[] = {"/v2/models/{name}/infer", "/v2/models/{name}/ready",
                                                "/v2/models/{name}/config", "/v2/models/{name}/stats"};
        const char *last = strrchr(path, '/');
        for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
            if (!strcmp(last + 1, actions[i]) && last > path + strlen("/v2/models/")) return templates[i];
        return "/v2/models/{name}";
    }
    return "other";
}
