/* main.c — command line, start-up and orderly shutdown.
 *
 * Signals are blocked in every thread and taken here, by the main thread in
 * sigwait: SIGHUP reloads the scripts; SIGTERM or SIGINT stops. Stopping
 * goes in three steps, so that a load balancer in front can take this
 * instance out without a point lost or a client refused:
 *   1. /health answers 503 at once (the balancer's check sees it) while
 *      ingest goes on for listen.drain_seconds (0 by default); a second
 *      SIGTERM or SIGINT ends that wait early;
 *   2. ingest answers 503 "shutting down" (nothing of such a body is taken)
 *      and the sender flushes within monitoring.shutdown_timeout;
 *   3. the server stops; what is left stays in the spool for the next start. */
#include <curl/curl.h>
#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "schema.h"
#include "script.h"
#include "output.h"
#include "status.h"
#include "version.h"

/* Where the installed config lives: $(SYSCONFDIR) of the Makefile (/etc for
 * the Debian package), read when no -c is given and there is no
 * ./config/luagw.yaml (the source tree's). */
#ifndef GW_SYSCONFDIR
#define GW_SYSCONFDIR "/etc"
#endif
#define GW_CONFIG_INSTALLED_PATH GW_SYSCONFDIR "/luagw/luagw.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: luagw [-c FILE] [--check-config] [--help-config] [--version] [--help]\n"
            "       luagw [-c FILE] --print-config [KEY...]\n"
            "\n"
            "Receive monitoring points over HTTP (JSON on /v1/points, InfluxDB line\n"
            "protocol on /write and /api/v2/write), run each series' Lua script and\n"
            "forward the points to InfluxDB in batches.\n"
            "\n"
            "  -c, --config FILE  configuration file (default ./%s if it exists,\n"
            "                     else %s)\n"
            "      --check-config validate the configuration and exit 0 (valid) or 1\n"
            "      --help-config  list every configuration key with its default\n"
            "      --print-config [KEY...]\n"
            "                     print what the configuration sets, includes read,\n"
            "                     defaults applied and ${VAR} expanded: one KEY's value\n"
            "                     alone, or key=value lines for several keys, a section\n"
            "                     (monitoring) or, without KEY, every key; exit 2 for\n"
            "                     an unknown key\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "Signals: SIGTERM or SIGINT make /health answer 503, keep ingesting for\n"
            "listen.drain_seconds (a second signal ends that early), then stop\n"
            "accepting, flush within monitoring.shutdown_timeout and exit 0. SIGHUP\n"
            "reloads the scripts (the scripts section and the script files); if\n"
            "anything is wrong the running scripts stay.\n",
            GW_CONFIG_DEFAULT_PATH, GW_CONFIG_INSTALLED_PATH);
}

/* Quotes in a message would end the log value early. */
static const char *unquote(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '"')
            *p = '\'';
    return s;
}

/* Without -c: the source tree's config when run from there, else the
 * installed one. NULL (said on stderr) when neither exists. */
static const char *find_config(void)
{
    if (access(GW_CONFIG_DEFAULT_PATH, F_OK) == 0)
        return GW_CONFIG_DEFAULT_PATH;
    if (access(GW_CONFIG_INSTALLED_PATH, F_OK) == 0)
        return GW_CONFIG_INSTALLED_PATH;
    fprintf(stderr, "luagw: no configuration file: neither ./%s nor %s exists (give one with -c FILE)\n",
            GW_CONFIG_DEFAULT_PATH, GW_CONFIG_INSTALLED_PATH);
    return NULL;
}

/* Say what loading found odd (cfg->warnings, one per line): on stderr for
 * --check-config, else in the log. */
static void warn_config(const gw_config_t *cfg, int to_stderr)
{
    const char *line = cfg->warnings, *end;
    char one[1024];

    while (line && *line) {
        end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        snprintf(one, sizeof(one), "%.*s", (int)(end - line), line);
        if (to_stderr)
            fprintf(stderr, "warning: %s\n", one);
        else
            gw_log_warn("configuration warning", "warning=\"%s\"", unquote(one));
        line = *end ? end + 1 : end;
    }
}

/* Every connection is a file descriptor: raise the soft limit of open
 * files to the hard one (as nginx's worker_rlimit_nofile does, and Go at
 * start-up), and say so when even that falls short of listen.* (beyond it,
 * connections wait in the kernel's queue until others close). */
static void raise_fd_limit(const gw_config_t *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->listen.max_connections + (rlim_t)cfg->listen.probe_connections + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max < (1 << 20) ? rl.rlim_max : (1 << 20), rl.rlim_max};
        if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur < want)
        gw_log_warn("the limit of open files is below what listen.max_connections and listen.probe_connections need",
                    "limit=%llu needed=%llu", (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* Keep /metrics slots for the series the configuration names, so that
 * junk names cannot crowd them out (metrics.h): the declared ones
 * (`series:`) and those with scripts (`scripts.series`, and <series>.lua in
 * scripts.dir as gw_script_set_load reads it). */
static void pin_series(const gw_config_t *cfg)
{
    const gw_conf_node_t *maps[] = {cfg->series, cfg->scripts.series};
    struct dirent *de;
    DIR *d;
    int failed = 0;

    for (int m = 0; m < 2; m++)
        for (const gw_conf_node_t *c = maps[m] ? maps[m]->child : NULL; c; c = c->next)
            failed += gw_series_pin(c->key, strlen(c->key)) != 0;
    if ((d = opendir(cfg->scripts.dir))) {
        while ((de = readdir(d))) {
            size_t n = strlen(de->d_name);
            if (n > 4 && de->d_name[0] != '.' && strcmp(de->d_name + n - 4, ".lua") == 0 &&
                strcmp(de->d_name, "_all.lua") != 0)
                failed += gw_series_pin(de->d_name, n - 4) != 0;
        }
        closedir(d);
    }
    if (failed)
        gw_log_warn("series without a /metrics slot of their own: more than 1024 named, or names over 111 bytes",
                    "series=%d", failed);
}

/* SIGHUP: read the file again and put its scripts, routes: and
 * listen.tokens in force, all or nothing: workers switch at their next
 * request and finish the one in progress with what it began with. A bad
 * file, a script that does not load or a route naming an output that is
 * not running is logged and the running set stays. Other settings
 * (outputs included) take effect on restart. */
static void reload(const char *path, const gw_outputs_t *outs)
{
    char err[1024];
    gw_config_t *cfg = gw_config_load(path, err, sizeof(err));
    gw_script_set_t *set = NULL;
    gw_access_t *access = NULL;

    if (!cfg) {
        gw_log_error("reload failed, the running scripts stay, and the routes and tokens", "error=\"%s\"", unquote(err));
        gw_status_reload(0, 0, err);
        return;
    }
    warn_config(cfg, 0);
    access = gw_access_create(cfg, outs, err, sizeof(err));
    if (access)
        set = gw_script_set_load(cfg, err, sizeof(err));
    if (set)
        pin_series(cfg);
    gw_config_free(cfg);
    if (!set) {
        gw_access_release(access);
        gw_log_error("reload failed, the running scripts stay, and the routes and tokens", "error=\"%s\"", unquote(err));
        gw_status_reload(0, 0, err);
        return;
    }
    gw_status_reload(1, gw_script_set_count(set), NULL);
    gw_log_info("scripts reloaded", "config=%s scripts=%d routes=%d tokens=%d", path, gw_script_set_count(set),
                gw_access_routes(access), gw_access_tokens(access));
    gw_script_set_publish(set);
    gw_access_publish(access);
}

/* Take signals until SIGTERM or SIGINT (SIGHUP reloads); returns it. */
static int wait_for_stop(const sigset_t *set, const char *path, const gw_outputs_t *outs)
{
    int sig;

    for (;;) {
        if (sigwait(set, &sig))
            continue;
        if (sig != SIGHUP)
            return sig;
        reload(path, outs);
    }
}

/* Step 1 of stopping: /health answers 503 so that a load balancer takes
 * this instance out, while ingest goes on for seconds — longer than the
 * balancer needs to notice, so no client is refused. Another SIGTERM or
 * SIGINT ends the wait early; SIGHUP still reloads. */
static void drain(gw_http_t *http, const sigset_t *set, double seconds, const char *path, const gw_outputs_t *outs)
{
    double end = gw_clock_mono() + seconds, left;
    struct timespec ts;
    int sig;

    if (seconds <= 0)
        return; /* gw_http_drain turns /health to 503 with ingest */
    gw_http_leave(http);
    gw_log_info("draining: /health answers 503, ingest goes on", "drain_seconds=%g", seconds);
    while ((left = end - gw_clock_mono()) > 0) {
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGHUP) {
            reload(path, outs);
        } else if (sig == SIGTERM || sig == SIGINT) {
            gw_log_info("drain cut short", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
    }
    gw_log_info("drain over: ingest answers 503 from now on", "drain_seconds=%g", seconds);
}

/* Steps 2 and 3 of stopping, also after a failed start (any of the parts
 * may be NULL): ingest answers 503 so that no point arrives after the last
 * flush; the server keeps answering while the outputs flush, each within
 * its shutdown_timeout (they log what they leave); then it stops. */
static void shut_down(gw_http_t *http, gw_outputs_t *outs)
{
    gw_http_drain(http);
    gw_outputs_stop(outs);
    gw_http_stop(http);
    gw_access_publish(NULL);
}

/* Run the gateway on a loaded config and scripts (both consumed) until a
 * signal of set (blocked) stops it. The exit status: 0 after a signal, 1
 * when it could not start. */
static int serve(gw_config_t *cfg, gw_script_set_t *scripts, const char *path, const sigset_t *set)
{
    char err[1024];
    gw_outputs_t *outs = NULL;
    gw_access_t *access = NULL;
    gw_http_t *http = NULL;
    gw_schema_t *schema = NULL;
    int sig, status = 1;

    gw_log_set_level(cfg->log.level);
    warn_config(cfg, 0);
    gw_log_info("scripts loaded", "dir=%s scripts=%d", cfg->scripts.dir, gw_script_set_count(scripts));
    gw_script_set_publish(scripts);
    if (gw_status_start(path, gw_script_set_count(scripts)))
        gw_log_warn("cannot start the status sampler: /status shows no rate history", "%s", "");
    /* Series declarations are read at start-up (a reload keeps them). */
    schema = gw_schema_create(cfg);
    if (!schema) {
        gw_log_error("cannot compile the series declarations", "error=\"out of memory\"");
        goto out;
    }
    gw_schema_publish(schema);
    pin_series(cfg);
    gw_log_info("series declarations loaded", "series=%d service=\"%s\"", gw_schema_count(schema), cfg->service);

    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        gw_log_error("curl_global_init failed", "%s", "");
        goto out;
    }
    raise_fd_limit(cfg);
    /* With spools this also recovers what an earlier run left. */
    outs = gw_outputs_start(cfg, err, sizeof(err));
    if (!outs) {
        gw_log_error("cannot start the outputs", "error=\"%s\"", err);
        goto out;
    }
    access = gw_access_create(cfg, outs, err, sizeof(err));
    if (!access) {
        gw_log_error("cannot compile the routes and tokens", "error=\"%s\"", err);
        goto out;
    }
    gw_access_publish(access);
    http = gw_http_start(cfg, outs, err, sizeof(err));
    if (!http) {
        gw_log_error("cannot start the HTTP server", "error=\"%s\"", err);
        goto out;
    }
    gw_log_info("luagw started", "version=%s pid=%ld config=%s listen=%s:%d influx=%s:%d/%s", GW_VERSION,
                (long)getpid(), path, cfg->listen.address, cfg->listen.port, cfg->monitoring.host,
                cfg->monitoring.port,
                cfg->monitoring.version == 2 ? cfg->monitoring.bucket : cfg->monitoring.database);

    for (int i = 0; i < gw_outputs_count(outs); i++) {
        const gw_config_t *oc = gw_outputs_conf(outs, i)->cfg;
        gw_log_info("output", "output=%s influx=%s:%d/%s passthrough=%s spool=\"%s\"", gw_outputs_conf(outs, i)->name,
                    oc->monitoring.host, oc->monitoring.port,
                    oc->monitoring.version == 2 ? oc->monitoring.bucket : oc->monitoring.database,
                    gw_outputs_conf(outs, i)->passthrough ? "true" : "false", oc->spool.dir);
    }

    sig = wait_for_stop(set, path, outs);
    gw_log_info("stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    drain(http, set, cfg->listen.drain_seconds, path, outs);
    status = 0;

out:
    shut_down(http, outs);
    gw_status_stop();
    gw_script_shutdown();
    gw_schema_publish(NULL);
    gw_schema_destroy(schema);
    gw_config_free(cfg);
    curl_global_cleanup();
    return status;
}

/* --print-config KEY...: nothing is printed unless every key is known. */
static int print_config(const char *path, char **keys, int nkeys)
{
    char err[1024], *text = NULL;
    size_t len = 0;
    gw_config_t *cfg = gw_config_load(path, err, sizeof(err));
    FILE *mem;
    int status = 0;

    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    mem = open_memstream(&text, &len);
    if (!mem) {
        fprintf(stderr, "luagw: --print-config: out of memory\n");
        gw_config_free(cfg);
        return 1;
    }
    if (!nkeys)
        gw_config_print_key(cfg, NULL, 0, mem, NULL, 0);
    for (int i = 0; i < nkeys && !status; i++)
        if (gw_config_print_key(cfg, keys[i], nkeys == 1, mem, err, sizeof(err))) {
            fprintf(stderr, "luagw: --print-config: %s\n", err);
            status = 2;
        }
    fclose(mem);
    if (!status)
        fwrite(text, 1, len, stdout);
    free(text);
    gw_config_free(cfg);
    return status;
}

/* What the command line asks for. */
typedef struct {
    const char *path; /* -c, or NULL: find_config */
    int check_only;   /* --check-config */
    int print;        /* --print-config [KEY...]: the keys from optind on */
} args_t;

/* Read the command line into *a. -1 to go on, else the exit status: 0
 * after --help, --version or --help-config, 2 for a usage error. */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"help-config", no_argument, NULL, 'R'},
        {"print-config", no_argument, NULL, 'P'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    memset(a, 0, sizeof(*a));
    while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            a->path = optarg;
            break;
        case 'C':
            a->check_only = 1;
            break;
        case 'P':
            a->print = 1;
            break;
        case 'R':
            gw_config_print_reference(stdout);
            return 0;
        case 'V':
            printf("luagw %s\n", GW_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc && !a->print) {
        fprintf(stderr, "luagw: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (a->print && a->check_only) {
        fprintf(stderr, "luagw: --print-config and --check-config do not go together\n");
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *path;
    int check_only, rc;
    char err[1024];
    gw_config_t *cfg;
    gw_script_set_t *scripts;
    sigset_t set;
    args_t a;

    if ((rc = parse_args(argc, argv, &a)) >= 0)
        return rc;
    check_only = a.check_only;
    if (!(path = a.path) && !(path = find_config()))
        return 1;
    if (a.print)
        return print_config(path, argv + optind, argc - optind);
    /* Blocked from here on, in this thread and every thread it starts: they
     * are taken by sigwait only, so no handler runs inside a worker, and a
     * SIGHUP that comes while luagw starts waits for it (a reload just
     * after the start) rather than killing it. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (!check_only)
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    cfg = gw_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check_only)
        warn_config(cfg, 1);
    /* The scripts are part of the configuration: they must load too. */
    scripts = gw_script_set_load(cfg, err, sizeof(err));
    if (!scripts) {
        fprintf(stderr, "%s\n", err);
        gw_config_free(cfg);
        return 1;
    }
    if (check_only) {
        printf("%s: ok\n", path);
        gw_script_set_release(scripts);
        gw_config_free(cfg);
        return 0;
    }
    return serve(cfg, scripts, path, &set);
}
