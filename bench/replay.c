/* replay.c — a fixed replay through parse → script → encode, the per-point
 * work of luagw without HTTP or delivery, for instruction counts.
 *
 * usage: replay [-f lp|json] [-i ITERATIONS] [-n POINTS] [-b BODIES]
 *               [-k SHAPES] [-w WARMUPS] [-c CONFIG] [-o FILE]
 *   Builds BODIES (4) bodies of POINTS (1000) seed-series points
 *   (bench/bodies.c, the same bytes bench/load.c sends), runs each through
 *   one worker's gw_pipeline_t WARMUPS (2) times to warm up (buffers grown, traces
 *   compiled), then ITERATIONS (25) times over all bodies inside measured(),
 *   and prints
 *     points=N rejected=N bytes_out=N ns_per_point=X scripts=off|on|unavailable
 *   -k SHAPES  one more tag on every point, cycling through SHAPES values
 *              across the bodies (bench_body_shapes)
 *   -c CONFIG  scripts on: load CONFIG (its scripts.dir), load the script set
 *              and publish it, as luagw does at start-up, so that every
 *              pipeline the scripting engine integrates runs the scripts;
 *              and compile and publish its series declarations (series:)
 *              as luagw does.
 *              "scripts=unavailable" (exit 3) when the core has no
 *              scripting engine yet.
 *   -o FILE    write the encoded output of the first body to FILE.
 * Rejected points are counted in "rejected" and the first one's message
 * goes to stderr: every bench body is valid, so any is a bug.
 *
 * Instructions per point: run under
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured
 * and divide the "totals:" of the output file by points (bench/run.sh does).
 * ns_per_point is wall-clock and only meaningful outside valgrind. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../gateway/config.h"
#include "../gateway/lineproto.h"
#include "../gateway/pipeline.h"
#include "../gateway/schema.h"
#include "../gateway/script.h"
#include "bodies.h"

/* The scripting engine may not be linked in yet: refer to it weakly and
 * look whether it is there at run time. */
#pragma weak gw_script_set_load
#pragma weak gw_script_set_publish
#pragma weak gw_script_shutdown

#define NOW_NS INT64_C(1700000000000000000)

typedef struct {
    char *body; /* owned */
    size_t len;
} body_t;

typedef struct {
    uint64_t points, rejected, bytes;
    char first_error[300]; /* the first rejection's message, "" when none */
} tally_t;

/* Run every body iterations times through w. */
static __attribute__((noinline)) int replay(gw_pipeline_t *w, const gw_ingest_t *in, const body_t *b,
                                            int nbodies, int iterations, tally_t *t)
{
    for (int it = 0; it < iterations; it++) {
        for (int i = 0; i < nbodies; i++) {
            gw_result_t res;
            const uint32_t *ends;
            uint32_t n;
            size_t len;

            memset(&res, 0, sizeof(res));
            if (gw_pipeline_run(w, in, b[i].body, b[i].len, &res))
                return -1;
            gw_pipeline_output(w, &len, &ends, &n);
            t->points += n;
            t->rejected += res.rejected;
            if (res.has_error && !t->first_error[0])
                snprintf(t->first_error, sizeof(t->first_error), "%s %u: %s",
                         res.err_kind == GW_WHERE_INDEX ? "index" : "line", res.err_where,
                         res.err_msg);
            t->bytes += len;
        }
    }
    return 0;
}

/* The measured region: callgrind collects only inside this function (the
 * warm-up calls replay() directly). */
__attribute__((noinline)) int measured(gw_pipeline_t *w, const gw_ingest_t *in, const body_t *b,
                                       int nbodies, int iterations, tally_t *t);
__attribute__((noinline)) int measured(gw_pipeline_t *w, const gw_ingest_t *in, const body_t *b,
                                       int nbodies, int iterations, tally_t *t)
{
    int rc = replay(w, in, b, nbodies, iterations, t);
    __asm__ volatile("" ::: "memory"); /* not a tail call: callgrind sees replay() inside */
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int format = BODY_LP, iterations = 25, nbodies = 4, opt, scripts = 0, warmups = 2;
    unsigned npoints = 1000, shapes = 0;
    const char *config = NULL, *out_path = NULL;
    gw_config_t *cfg = NULL;
    gw_schema_t *schema = NULL; /* published until exit */
    gw_pipeline_t *w;
    body_t *bodies;
    gw_ingest_t in = {0};
    tally_t warm = {0}, t = {0};
    char err[1024];
    double t0, t1;

    while ((opt = getopt(argc, argv, "f:i:n:b:k:w:c:o:")) != -1) {
        switch (opt) {
        case 'f': format = strcmp(optarg, "json") == 0 ? BODY_JSON : BODY_LP; break;
        case 'i': iterations = atoi(optarg); break;
        case 'n': npoints = (unsigned)atoi(optarg); break;
        case 'b': nbodies = atoi(optarg); break;
        case 'k': shapes = (unsigned)atoi(optarg); break;
        case 'w': warmups = atoi(optarg); break;
        case 'c': config = optarg; break;
        case 'o': out_path = optarg; break;
        default:
            fprintf(stderr, "usage: replay [-f lp|json] [-i ITERATIONS] [-n POINTS] [-b BODIES] "
                            "[-k SHAPES] [-w WARMUPS] [-c CONFIG] [-o FILE]\n");
            return 2;
        }
    }
    if (iterations < 1 || nbodies < 1 || npoints < 1 || warmups < 0)
        return 2;

    if (config) {
        gw_script_set_t *set;
        if (!gw_script_set_load || !gw_script_set_publish) {
            printf("points=0 rejected=0 bytes_out=0 ns_per_point=0 scripts=unavailable\n");
            return 3;
        }
        cfg = gw_config_load(config, err, sizeof(err));
        if (!cfg) {
            fprintf(stderr, "replay: %s\n", err);
            return 1;
        }
        set = gw_script_set_load(cfg, err, sizeof(err));
        if (!set) {
            fprintf(stderr, "replay: scripts: %s\n", err);
            return 1;
        }
        gw_script_set_publish(set);
        scripts = 1;
        schema = gw_schema_create(cfg);
        if (!schema) {
            fprintf(stderr, "replay: series declarations: out of memory\n");
            return 1;
        }
        gw_schema_publish(schema);
    }

    bodies = calloc((size_t)nbodies, sizeof(*bodies));
    for (int i = 0; i < nbodies; i++) {
        bodies[i].body = bench_body_shapes(format, npoints, (unsigned)i + 1, shapes, &bodies[i].len);
        if (!bodies[i].body) {
            fprintf(stderr, "replay: out of memory\n");
            return 1;
        }
    }
    w = gw_pipeline_create(GW_LP_NO_UINT);
    if (!w) {
        fprintf(stderr, "replay: out of memory\n");
        return 1;
    }
    in.format = format == BODY_JSON ? GW_FMT_JSON : GW_FMT_LINEPROTO;
    in.ns_per_unit = 1;
    in.now_ns = NOW_NS;

    /* Warm up: grow every buffer, let LuaJIT compile its traces. */
    if (replay(w, &in, bodies, nbodies, warmups, &warm)) {
        fprintf(stderr, "replay: out of memory\n");
        return 1;
    }
    if (out_path) {
        size_t len;
        const uint32_t *ends;
        uint32_t n;
        gw_result_t res;
        FILE *f = fopen(out_path, "w");
        memset(&res, 0, sizeof(res));
        gw_pipeline_run(w, &in, bodies[0].body, bodies[0].len, &res);
        const char *lines = gw_pipeline_output(w, &len, &ends, &n);
        if (f) {
            fwrite(lines, 1, len, f);
            fclose(f);
        }
    }

    t0 = now_s();
    if (measured(w, &in, bodies, nbodies, iterations, &t)) {
        fprintf(stderr, "replay: out of memory\n");
        return 1;
    }
    t1 = now_s();
    printf("points=%llu rejected=%llu bytes_out=%llu ns_per_point=%.1f scripts=%s\n",
           (unsigned long long)t.points, (unsigned long long)t.rejected,
           (unsigned long long)t.bytes, t.points ? (t1 - t0) * 1e9 / (double)t.points : 0.0,
           scripts ? "on" : "off");
    if (t.first_error[0])
        fprintf(stderr, "replay: rejected points; the first: %s\n", t.first_error);

    gw_pipeline_destroy(w);
    if (scripts && gw_script_shutdown)
        gw_script_shutdown();
    gw_config_free(cfg);
    for (int i = 0; i < nbodies; i++)
        free(bodies[i].body);
    free(bodies);
    return 0;
}
