#include "cmd_verify.h"

#include <stdbool.h>
#include <stdio.h>

#include "args.h"
#include "backend.h"
#include "cli.h"
#include "cli_env.h"
#include "registry.h"

/* Load the model completely, as the server does: registry_load_model
 * verifies every file it reads before handing anything out, and its
 * messages name the file and the problem. */
static bool verify_model(const registry *reg, const char *name, moda_backend *be) {
    registry_model m;
    char err[ERR_LEN] = "";
    moda_status s = registry_load_model(reg, name, be, &m, err, sizeof err);
    if (s != MODA_OK) {
        fprintf(stderr, "moda verify: %s\n", err[0] ? err : moda_status_string(s));
        return false;
    }
    printf("%s: ok (manifest, %s, %s)\n", name, REGISTRY_WEIGHTS_FILE, REGISTRY_RATES_FILE);
    registry_model_free(&m);
    return true;
}

static int verify_usage(const char *why, bool help) {
    FILE *f = help ? stdout : stderr;
    if (why) fprintf(stderr, "moda verify: %s\n", why);
    fprintf(f, "usage: moda verify REGISTRY [MODEL]\n\n"
               "Checks every file of the registry, or of one model: index.json, each\n"
               "manifest's sha256 against the index, each weights, rates or calibration file's\n"
               "size and sha256 against its manifest, that it decompresses and parses as\n"
               "safetensors, and that every tensor's shape matches the manifest's architecture\n"
               "(a patched model's parents must also be there, unchanged). Prints one\n"
               "line per model checked; on a problem names the file and the problem and exits\n"
               "1. REGISTRY is a directory or an http(s) URL (checked through its local\n"
               "mirror).\n");
    return help ? 0 : EXIT_USAGE;
}

int cmd_verify(int argc, char **argv) {
    bool help = false;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    bool ok = args_parse(argc, argv, 2, NULL, 0, pos, 2, &npos, &help);
    if (!ok || help || npos < 1) return verify_usage(ok && !help ? "REGISTRY is required" : NULL, help);

    char err[ERR_LEN] = "";
    registry *reg = NULL;
    const registry_remote_options remote = cli_env_registry_options();
    moda_status s = registry_open(pos[0], &remote, &reg, err, sizeof err);
    if (s != MODA_OK) {
        fprintf(stderr, "moda verify: %s\n", err[0] ? err : moda_status_string(s));
        return 1;
    }
    moda_backend *be = backend_cpu_new();
    if (!be) {
        fprintf(stderr, "moda verify: cannot create the CPU backend\n");
        registry_close(reg);
        return 1;
    }
    int failed = 0;
    if (npos == 2) {
        failed = !verify_model(reg, pos[1], be);
    } else {
        /* Every model, so that one report lists every problem. */
        for (int i = 0; i < registry_count(reg); i++) failed += !verify_model(reg, registry_name(reg, i), be);
        if (registry_count(reg) == 0) printf("(no models)\n");
    }
    backend_free(be);
    registry_close(reg);
    return failed ? 1 : 0;
}
