/* A registry behind an http:// or https:// URL, read through a local
 * mirror (libcurl). Opening it fetches index.json, then each model's
 * manifest and data files that the mirror does not already hold with the
 * sha256 the index and the manifests give; every download is checked
 * against its hash and size before it is written, atomically. index.json
 * goes last, so the mirror is a complete local registry at every moment
 * and the reader verifies it again as it would any other. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fileio.h"
#include "registry_internal.h"

#define PATH_LEN 4096
#define URL_LEN 4096
/* No connection within this long, or no progress for this long, fails
 * the download instead of hanging; the options' timeout_s sets both. */
#define CONNECT_TIMEOUT_S 15L
#define STALL_TIMEOUT_S 60L
#define MAX_TIMEOUT_S 86400L

registry_remote_options registry_remote_options_from(char *(*lookup)(const char *name)) {
    return (registry_remote_options){
        .cache_dir = lookup("MODA_REGISTRY_CACHE"),
        .cache_home = lookup("XDG_CACHE_HOME"),
        .home = lookup("HOME"),
        .timeout_s = registry_timeout_parse(lookup("MODA_REGISTRY_TIMEOUT")),
    };
}

long registry_timeout_parse(const char *text) {
    char *end = NULL;
    long s = text ? strtol(text, &end, 10) : 0;
    return text && *text && !*end && s > 0 && s <= MAX_TIMEOUT_S ? s : 0;
}

static void timeouts(const registry_remote_options *remote, long *connect, long *stall) {
    *connect = CONNECT_TIMEOUT_S;
    *stall = STALL_TIMEOUT_S;
    if (remote && remote->timeout_s > 0 && remote->timeout_s <= MAX_TIMEOUT_S) *connect = *stall = remote->timeout_s;
}

bool registry_is_url(const char *root) {
    return root && (!strncmp(root, "http://", 7) || !strncmp(root, "https://", 8));
}

/* Where the mirror of url lives: the cache directory, else
 * <cache_home>/moda/registries, else <home>/.cache/moda/registries, else
 * /tmp/moda-registries; then the first 16 hex digits of the URL's sha256. */
static bool mirror_dir(const char *url, const registry_remote_options *remote, char *dir, size_t len) {
    char base[PATH_LEN];
    const char *cache = remote ? remote->cache_dir : NULL, *cache_home = remote ? remote->cache_home : NULL,
               *home = remote ? remote->home : NULL;
    int n = cache && cache[0]             ? snprintf(base, sizeof base, "%s", cache)
            : cache_home && cache_home[0] ? snprintf(base, sizeof base, "%s/moda/registries", cache_home)
            : home && home[0]             ? snprintf(base, sizeof base, "%s/.cache/moda/registries", home)
                                          : snprintf(base, sizeof base, "/tmp/moda-registries");
    size_t n_url = strlen(url);
    while (n_url && url[n_url - 1] == '/') n_url--; /* ".../reg/" is ".../reg" */
    char hex[SHA256_HEX_LEN];
    sha256_hex(url, n_url, hex);
    return n > 0 && (size_t)n < sizeof base && snprintf(dir, len, "%s/%.16s", base, hex) < (int)len;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_status;
static void curl_init(void) { curl_init_status = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* A download into memory, refused past `limit` bytes. */
typedef struct fetch_buf {
    uint8_t *data;
    size_t len, cap, limit;
    bool too_big;
} fetch_buf;

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
    fetch_buf *b = arg;
    size_t add = size * n;
    if (add > b->limit - b->len) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + add + 1) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = 0; /* text can be parsed in place */
    return add;
}

/* One mirroring: the registry's URL, the local directory that mirrors it,
 * and how downloads are bounded. */
typedef struct mirror_job {
    const char *url, *local;
    const registry_remote_options *remote;
} mirror_job;

/* GET <job's URL>/rel into *out (caller frees out->data). */
static moda_status fetch(const mirror_job *job, const char *rel, size_t limit, fetch_buf *out, char *err,
                         size_t errlen) {
    const char *base = job->url;
    char url[URL_LEN];
    memset(out, 0, sizeof(*out));
    out->limit = limit;
    size_t blen = strlen(base);
    bool slash = blen && base[blen - 1] == '/';
    if (snprintf(url, sizeof url, "%s%s%s", base, slash ? "" : "/", rel) >= (int)sizeof url)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: URL too long", base);
    CURL *c = curl_easy_init();
    if (!c) return fileio_fail(err, errlen, MODA_ERR_NOMEM, "%s: cannot start a transfer", url);
    char why[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    long connect_s, stall_s;
    timeouts(job->remote, &connect_s, &stall_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* safe in threaded programs */
    CURLcode rc = curl_easy_perform(c);
    long http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(c);
    moda_status s = MODA_OK;
    if (out->too_big)
        s = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: larger than the %zu bytes expected", url, limit);
    else if (rc != CURLE_OK)
        s = fileio_fail(err, errlen, MODA_ERR_IO, "%s: %s", url, why[0] ? why : curl_easy_strerror(rc));
    else if (http == 404 || http == 410)
        s = fileio_fail(err, errlen, MODA_ERR_NOT_FOUND, "%s: HTTP %ld (not found)", url, http);
    else if (http >= 300)
        s = fileio_fail(err, errlen, MODA_ERR_IO, "%s: HTTP %ld", url, http);
    if (s != MODA_OK) {
        free(out->data);
        memset(out, 0, sizeof(*out));
    }
    return s;
}

/* Whether path holds exactly the bytes with this sha256 (and size, when
 * bytes is non-zero). */
static bool have_file(const char *path, const char *sha, uint64_t bytes) {
    struct stat st;
    if (stat(path, &st) != 0 || (bytes && (uint64_t)st.st_size != bytes)) return false;
    char hex[SHA256_HEX_LEN];
    return sha256_file(path, hex, NULL, 0) == MODA_OK && strcasecmp(hex, sha) == 0;
}

/* Fetch url/rel unless local/rel already matches, check it against sha
 * and (non-zero) bytes, and write it there atomically. */
static moda_status sync_file(const mirror_job *job, const char *rel, const char *sha, uint64_t bytes, size_t limit,
                             char *err, size_t errlen) {
    const char *url = job->url, *local = job->local;
    char path[PATH_LEN];
    if (snprintf(path, sizeof path, "%s/%s", local, rel) >= (int)sizeof path)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", local);
    if (have_file(path, sha, bytes)) return MODA_OK;
    fetch_buf b;
    MODA_TRY(fetch(job, rel, bytes ? (size_t)bytes : limit, &b, err, errlen));
    char hex[SHA256_HEX_LEN];
    sha256_hex(b.data, b.len, hex);
    moda_status s = MODA_OK;
    if (bytes && b.len != bytes)
        s = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s/%s: %zu bytes, the registry says %llu", url, rel, b.len,
                        (unsigned long long)bytes);
    else if (strcasecmp(hex, sha) != 0)
        s = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s/%s: sha256 %s, the registry says %s", url, rel, hex, sha);
    if (s == MODA_OK) s = fileio_write_atomic(path, b.data, b.len, err, errlen);
    free(b.data);
    return s;
}

/* One model: its manifest (hash from the index), then the data files it
 * lists (hashes and sizes from the manifest). */
static moda_status sync_model(const mirror_job *job, const registry_entry *e, char *err, size_t errlen) {
    const char *local = job->local;
    char dir[PATH_LEN], rel[PATH_LEN];
    if (!registry_path(dir, sizeof dir, local, e->name, NULL) ||
        !registry_path(rel, sizeof rel, e->name, e->manifest, NULL))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", local);
    MODA_TRY(fileio_mkdir_p(dir, err, errlen));
    MODA_TRY(sync_file(job, rel, e->sha256, 0, REGISTRY_MANIFEST_MAX_BYTES, err, errlen));
    char path[PATH_LEN];
    if (!registry_path(path, sizeof path, local, rel, NULL))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", local);
    uint8_t *text = NULL;
    size_t len = 0;
    MODA_TRY(fileio_read_all(path, REGISTRY_MANIFEST_MAX_BYTES, &text, &len, err, errlen));
    registry_model m;
    memset(&m, 0, sizeof m);
    registry_file_info files[REGISTRY_N_FILES];
    json_t *arch = NULL;
    moda_status s = registry_manifest_parse((const char *)text, path, e->name, &m, files, &arch, err, errlen);
    free(text);
    json_decref(arch);
    registry_model_free(&m);
    for (int f = 0; s == MODA_OK && f < REGISTRY_N_FILES; f++) {
        if (!files[f].path[0]) continue; /* not a file of this model's kind */
        if (!registry_path(rel, sizeof rel, e->name, files[f].path, NULL))
            return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", local);
        if (files[f].bytes > (uint64_t)SIZE_MAX)
            return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: %s is too large", path, files[f].path);
        s = sync_file(job, rel, files[f].sha256, files[f].bytes, 0, err, errlen);
    }
    return s;
}

moda_status registry_mirror(const char *url, const registry_remote_options *remote, char *local, size_t local_len,
                            char *err, size_t errlen) {
    if (!registry_is_url(url)) return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: not an http(s) URL", url);
    if (!mirror_dir(url, remote, local, local_len))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: the mirror's path is too long", url);
    pthread_once(&curl_once, curl_init);
    if (curl_init_status != CURLE_OK)
        return fileio_fail(err, errlen, MODA_ERR_IO, "libcurl: %s", curl_easy_strerror(curl_init_status));
    MODA_TRY(fileio_mkdir_p(local, err, errlen));
    const mirror_job job = {url, local, remote};
    fetch_buf index;
    MODA_TRY(fetch(&job, REGISTRY_INDEX_FILE, REGISTRY_INDEX_MAX_BYTES, &index, err, errlen));
    char where[URL_LEN];
    snprintf(where, sizeof where, "%s/%s", url, REGISTRY_INDEX_FILE);
    registry_entry *entries = NULL;
    int n = 0;
    moda_status s = registry_index_parse(index.data ? (const char *)index.data : "", index.len, where, &entries, &n,
                                         err, errlen);
    for (int i = 0; s == MODA_OK && i < n; i++) s = sync_model(&job, &entries[i], err, errlen);
    char path[PATH_LEN];
    if (s == MODA_OK && !registry_path(path, sizeof path, local, REGISTRY_INDEX_FILE, NULL))
        s = fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", local);
    if (s == MODA_OK) s = fileio_write_atomic(path, index.data, index.len, err, errlen);
    free(entries);
    free(index.data);
    return s;
}
