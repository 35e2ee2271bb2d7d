/* A registry behind an http:// URL: the bundled registry served by an
 * in-process HTTP server that counts requests and can corrupt, drop or
 * garble a file. The mirror must load the same model as the directory,
 * fetch only what changed, and turn every bad answer into a clear error
 * without writing the bad bytes. */
#include "test_util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_registry.h"
#include "fileio.h"
#include "registry.h"
#include "synthetic_idx.h"

#define MODEL "fmnist-lenet5"
#define WEIGHTS "/" MODEL "/" REGISTRY_WEIGHTS_FILE
#define MANIFEST "/" MODEL "/" REGISTRY_MANIFEST_FILE

static struct MHD_Daemon *daemon_;
static char url[64], cache[64];
/* Mirrors go in the test's cache directory. */
static registry_remote_options mirror_opts;
static atomic_int requests;
/* What the server does wrong, by URL path ("" for nothing). */
static char corrupt_path[128], missing_path[128], garbage_path[128], die_path[128];

/* A body that stops halfway: the connection closes after half of the
 * promised bytes, as when the server process dies mid-file. */
typedef struct half_body {
    uint8_t *data;
    size_t len, sent;
} half_body;

static ssize_t send_half(void *cls, uint64_t pos, char *buf, size_t max) {
    half_body *h = cls;
    if (pos >= h->len / 2) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = h->len / 2 - (size_t)pos < max ? h->len / 2 - (size_t)pos : max;
    memcpy(buf, h->data + pos, n);
    return (ssize_t)n;
}

static void free_half(void *cls) {
    half_body *h = cls;
    free(h->data);
    free(h);
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *path, const char *method,
                             const char *version, const char *upload, size_t *upload_len, void **state) {
    (void)cls, (void)method, (void)version, (void)upload, (void)upload_len, (void)state;
    atomic_fetch_add(&requests, 1);
    if (!strncmp(path, "/stalled/", 9)) { /* the registry again, after 3 s of saying nothing */
        sleep(3);
        path += 8;
    }
    char file[512];
    uint8_t *data = NULL;
    size_t len = 0;
    snprintf(file, sizeof file, "%s%s", MODA_MODELS_DIR, path);
    bool found = !strstr(path, "..") && strcmp(path, missing_path) != 0 &&
                 fileio_read_all(file, (size_t)1 << 30, &data, &len, NULL, 0) == MODA_OK;
    if (found && !strcmp(path, corrupt_path)) data[len / 2] ^= 0x40;
    if (found && !strcmp(path, garbage_path)) len = (size_t)snprintf((char *)data, len, "not json");
    if (found && !strcmp(path, die_path)) {
        half_body *h = malloc(sizeof(*h));
        *h = (half_body){.data = data, .len = len};
        struct MHD_Response *r = MHD_create_response_from_callback(len, 4096, send_half, h, free_half);
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ok;
    }
    struct MHD_Response *r = found ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_COPY)
                                   : MHD_create_response_from_buffer(9, "not found", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(c, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
    MHD_destroy_response(r);
    free(data);
    return ok;
}

static int setup(void **state) {
    snprintf(cache, sizeof cache, "/tmp/moda-remote-XXXXXX");
    if (!mkdtemp(cache) || tu_backend_setup(state)) return -1;
    mirror_opts = (registry_remote_options){.cache_dir = cache};
    struct sockaddr_in loopback = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, serve, NULL,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&loopback, MHD_OPTION_END);
    if (!daemon_) return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)info->port);
    return 0;
}

static int teardown(void **state) {
    tu_backend_teardown(state);
    MHD_stop_daemon(daemon_);
    return synth_remove_tree(cache);
}

/* The mirror's copy of a file, by URL path. */
static void mirrored(char *out, size_t len, const char *path) {
    char local[400], err[FILEIO_ERR_LEN];
    assert_int_equal(registry_mirror(url, &mirror_opts, local, sizeof local, err, sizeof err), MODA_OK);
    assert_true((size_t)snprintf(out, len, "%.400s%.100s", local, path) < len);
}

static void test_mirror_loads_the_same_model(void **state) {
    char err[FILEIO_ERR_LEN] = "";
    registry *remote = NULL, *local = NULL;
    atomic_store(&requests, 0);
    if (registry_open(url, &mirror_opts, &remote, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(atomic_load(&requests), 4); /* the index, a manifest, two data files */
    assert_int_equal(registry_open(MODA_MODELS_DIR, NULL, &local, err, sizeof err), MODA_OK);
    assert_int_equal(registry_count(remote), registry_count(local));
    assert_non_null(strstr(registry_root(remote), cache));
    moda_backend *be = *state;
    registry_model a, b;
    assert_int_equal(registry_load_model(remote, MODEL, be, &a, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(local, MODEL, be, &b, err, sizeof err), MODA_OK);
    assert_string_equal(a.manifest_sha256, b.manifest_sha256);
    assert_int_equal(a.g->n_params, b.g->n_params);
    for (int i = 0; i < a.g->n_params; i++)
        assert_memory_equal(a.g->params[i].data, b.g->params[i].data,
                            graph_param_numel(&a.g->params[i]) * sizeof(float));
    assert_int_equal(a.r.n_layers, b.r.n_layers);

    /* Writing to a URL is refused before anything is written. */
    assert_int_equal(registry_write_model(url, "copy", a.g, &a.info, NULL, a.test_acc, &a.r, &a.stats, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "read-only"));
    registry_model_free(&a);
    registry_model_free(&b);
    registry_close(remote);
    registry_close(local);
}

/* Opened again, only the index is fetched; a trailing slash names the
 * same registry; a file gone from the mirror is fetched again. */
static void test_only_what_changed(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN] = "", slash[80], weights[512];
    registry *r = NULL;
    atomic_store(&requests, 0);
    assert_int_equal(registry_open(url, &mirror_opts, &r, err, sizeof err), MODA_OK);
    registry_close(r);
    snprintf(slash, sizeof slash, "%s/", url);
    assert_int_equal(registry_open(slash, &mirror_opts, &r, err, sizeof err), MODA_OK);
    registry_close(r);
    assert_int_equal(atomic_load(&requests), 2);
    mirrored(weights, sizeof weights, WEIGHTS);
    assert_int_equal(unlink(weights), 0);
    atomic_store(&requests, 0);
    assert_int_equal(registry_open(url, &mirror_opts, &r, err, sizeof err), MODA_OK);
    assert_int_equal(atomic_load(&requests), 2);
    struct stat st;
    assert_int_equal(stat(weights, &st), 0);
    registry_close(r);
}

/* Drop `path` from the mirror and open with the server misbehaving on it
 * through *fault: the open fails with want and a message holding `says`,
 * the file stays absent, and once the server behaves the mirror heals. */
static void expect_fetch_failure(const char *path, char *fault, moda_status want, const char *says) {
    char err[FILEIO_ERR_LEN] = "", local[512];
    registry *r = NULL;
    mirrored(local, sizeof local, path);
    assert_int_equal(unlink(local), 0);
    snprintf(fault, 128, "%s", path);
    assert_int_equal(registry_open(url, &mirror_opts, &r, err, sizeof err), want);
    assert_null(r);
    if (!strstr(err, says)) fail_msg("'%s' does not say '%s'", err, says);
    struct stat st;
    assert_int_not_equal(stat(local, &st), 0);
    fault[0] = 0;
    assert_int_equal(registry_open(url, &mirror_opts, &r, err, sizeof err), MODA_OK);
    registry_close(r);
}

/* Bytes that do not match the manifest's sha256 are refused, not written. */
static void test_corrupt_download(void **state) {
    (void)state;
    expect_fetch_failure(WEIGHTS, corrupt_path, MODA_ERR_FORMAT, "sha256");
    expect_fetch_failure(WEIGHTS, corrupt_path, MODA_ERR_FORMAT, REGISTRY_WEIGHTS_FILE);
}

static void test_missing_file(void **state) {
    (void)state;
    expect_fetch_failure(MANIFEST, missing_path, MODA_ERR_NOT_FOUND, "HTTP 404");
}

static void test_bad_index(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN] = "";
    registry *r = NULL;
    snprintf(garbage_path, sizeof garbage_path, "/%s", REGISTRY_INDEX_FILE);
    assert_int_equal(registry_open(url, &mirror_opts, &r, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, REGISTRY_INDEX_FILE));
    garbage_path[0] = 0;
}

/* The server dies mid-file: the open fails with a clear error, the
 * mirror's last good copy still opens and loads, and no partial file is
 * left where a complete one belongs. */
static void test_server_dies_mid_file(void **state) {
    char err[FILEIO_ERR_LEN] = "", local[400], path[600];
    registry *r = NULL;
    assert_int_equal(registry_mirror(url, &mirror_opts, local, sizeof local, err, sizeof err), MODA_OK);
    snprintf(die_path, sizeof die_path, "/%s", REGISTRY_INDEX_FILE);
    assert_int_equal(registry_open(url, &mirror_opts, &r, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, REGISTRY_INDEX_FILE));
    assert_int_equal(registry_open(local, NULL, &r, err, sizeof err), MODA_OK); /* the last good copy */
    registry_model m;
    if (registry_load_model(r, MODEL, *state, &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    registry_model_free(&m);
    registry_close(r);

    /* A first download dying in the weights leaves no weights file. */
    registry_remote_options fresh = mirror_opts;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/fresh", cache);
    fresh.cache_dir = dir;
    snprintf(die_path, sizeof die_path, "%s", WEIGHTS);
    assert_int_not_equal(registry_mirror(url, &fresh, local, sizeof local, err, sizeof err), MODA_OK);
    assert_non_null(strstr(err, REGISTRY_WEIGHTS_FILE));
    snprintf(path, sizeof path, "%s%s", local, WEIGHTS);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    die_path[0] = 0;
    assert_int_equal(registry_mirror(url, &fresh, local, sizeof local, err, sizeof err), MODA_OK);
    assert_int_equal(stat(path, &st), 0);
}

static void test_unreachable(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN] = "";
    registry *r = NULL;
    /* Port 1 on loopback: refused at once, not a hang. */
    assert_int_equal(registry_open("http://127.0.0.1:1/reg", &mirror_opts, &r, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, "http://127.0.0.1:1/reg/index.json"));
    assert_int_equal(registry_open("ftp://127.0.0.1/reg", &mirror_opts, &r, err, sizeof err),
                     MODA_ERR_NOT_FOUND); /* a path */
}

/* A server that goes quiet for longer than the timeout fails the open,
 * though it would have answered in the end. */
static void test_stalled_server(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN] = "", stalled[80];
    registry *r = NULL;
    snprintf(stalled, sizeof stalled, "%s/stalled", url);
    registry_remote_options quick = mirror_opts;
    quick.timeout_s = 1;
    moda_status s = registry_open(stalled, &quick, &r, err, sizeof err);
    assert_int_equal(s, MODA_ERR_IO);
    assert_null(r);
    assert_non_null(strstr(err, "/stalled/index.json"));
}

/* The library reads no environment; the moda CLI reads
 * $MODA_REGISTRY_CACHE and puts its mirrors there. */
static void test_cli_mirrors_where_the_environment_says(void **state) {
    (void)state;
    char dir[128];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/from-env", cache);
    assert_int_not_equal(stat(dir, &st), 0);
    setenv("MODA_REGISTRY_CACHE", dir, 1);
    char *argv[] = {"moda", "inspect", url, NULL};
    int rc = cmd_inspect(3, argv);
    unsetenv("MODA_REGISTRY_CACHE");
    assert_int_equal(rc, 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mirror_loads_the_same_model),
        cmocka_unit_test(test_only_what_changed),
        cmocka_unit_test(test_corrupt_download),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_index),
        cmocka_unit_test(test_server_dies_mid_file),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_stalled_server),
        cmocka_unit_test(test_cli_mirrors_where_the_environment_says),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
