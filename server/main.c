/* moda-server: parse the command line, start the daemon, reload the
 * registry on SIGHUP, and shut it down gracefully on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "server.h"

int main(int argc, char **argv) {
    server_config cfg;
    int rc = server_config_parse(argc, argv, &cfg);
    if (rc == 1) return 0;
    if (rc != 0) return 2;

    /* Blocked before any thread starts, so every thread inherits the mask
     * and the signals wait for sigwait below. Writes to closed sockets
     * must fail with EPIPE, not kill the process. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    server *s = NULL;
    char err[512];
    if (server_start(&cfg, &s, err, sizeof err) != 0) {
        fprintf(stderr, "moda-server: %s\n", err);
        return 1;
    }
    int sig = 0;
    while (sigwait(&stop, &sig) != 0 || sig == SIGHUP) {
        if (sig == SIGHUP) server_reload(s);
        sig = 0;
    }
    if (cfg.log) {
        fprintf(cfg.log, "moda-server: %s received\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        fflush(cfg.log);
    }
    server_shutdown(s);
    server_free(s);
    return 0;
}
