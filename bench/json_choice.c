/* json_choice.c — which Debian JSON library parses POST /v1/points fastest?
 *
 * Parses one 1,000-point body (series requests / errors / ws_requests /
 * redis_message, 3 tags and 2 fields each) N times with jansson and cJSON,
 * walks every point the way gateway/json.c does (series, time, tags as
 * strings, typed fields, all strings copied into an arena) and prints the
 * best-of-R nanoseconds per point. Variants: default malloc, and a
 * thread-local bump allocator installed with json_set_alloc_funcs /
 * cJSON_InitHooks. Finally times the real gw_json_parse().
 *
 * Build and run (from the repository root):
 *   cc -O2 -g -std=gnu11 -D_GNU_SOURCE -o /tmp/json_choice bench/json_choice.c \
 *      gateway/json.c gateway/point.c gateway/arena.c gateway/buf.c \
 *      -ljansson -lcjson -lm && /tmp/json_choice [iterations [rounds]]
 * `/tmp/json_choice dump` prints the body instead; a third argument runs
 * only that variant (for instruction counts under valgrind).
 * Numbers and the decision are in bench/json_choice.md. */
#include <cjson/cJSON.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../gateway/arena.h"
#include "../gateway/json.h"
#include "../gateway/point.h"

#define NPOINTS 1000

/* ---- the body ---------------------------------------------------------- */

static char *make_body(size_t *len)
{
    static const char *const routes[] = {"GET:/version", "POST:/v1/points", "GET:/health",
                                         "GET:/api/users/{id}", "PUT:/api/items/{id}"};
    gw_buf_t b = {0};

    gw_buf_putc(&b, '[');
    for (int i = 0; i < NPOINTS; i++) {
        const char *route = routes[i % 5];
        double t = 1700000000.0 + i;
        if (i)
            gw_buf_append(&b, ",\n", 2);
        switch (i % 4) {
        case 0:
            gw_buf_printf(&b,
                          "{\"series\": \"requests\", \"time\": %.6f, \"tags\": {\"route\": \"%s\", "
                          "\"method\": \"GET\", \"status_code\": %d}, \"fields\": {\"request_id\": "
                          "\"4f1c%012x\", \"execution_time\": %.6f}}",
                          t + 0.123456, route, 200 + (i % 3) * 100, i * 7919, 0.0123 + i * 1e-5);
            break;
        case 1:
            gw_buf_printf(&b,
                          "{\"series\": \"errors\", \"time\": %.6f, \"tags\": {\"route\": \"%s\", "
                          "\"kind\": \"timeout\", \"status_code\": 504}, \"fields\": {\"message\": "
                          "\"upstream timed out after 30s\", \"count\": %d}}",
                          t + 0.5, route, i);
            break;
        case 2:
            gw_buf_printf(&b,
                          "{\"series\": \"ws_requests\", \"time\": %d, \"tags\": {\"route\": \"%s\", "
                          "\"event\": \"message\", \"ok\": true}, \"fields\": {\"bytes\": %d, "
                          "\"duration\": %.4f}}",
                          1700000000 + i, route, 100 + i, 0.25 + i * 1e-4);
            break;
        default:
            gw_buf_printf(&b,
                          "{\"series\": \"redis_message\", \"time\": \"2023-11-14T22:13:%02d.%06dZ\", "
                          "\"tags\": {\"channel\": \"events\", \"node\": \"redis-%d\", \"db\": %d}, "
                          "\"fields\": {\"size\": %d, \"latency\": %.6f}}",
                          i % 60, i * 997 % 1000000, i % 3, i % 16, 512 + i, 0.000321 + i * 1e-7);
            break;
        }
    }
    gw_buf_putc(&b, ']');
    *len = b.len;
    return b.data;
}

/* ---- a thread-local bump allocator ------------------------------------- */

/* A fixed region per thread; allocations that do not fit fall back to malloc,
 * free() of a region pointer is a no-op and the region is reset per parse. */
static __thread struct {
    char *base; /* owned */
    size_t size, used;
    int active;
} bump;

static void *bump_malloc(size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;

    if (bump.active && need <= bump.size - bump.used) {
        void *p = bump.base + bump.used;
        bump.used += need;
        return p;
    }
    return malloc(n);
}

static void bump_free(void *p)
{
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)bump.base;
    if (u - lo < bump.size)
        return;
    free(p);
}

static void bump_begin(void)
{
    if (!bump.base) {
        bump.size = 4u << 20;
        bump.base = malloc(bump.size);
    }
    bump.used = 0;
    bump.active = 1;
}

static void bump_end(void)
{
    bump.active = 0;
}

/* ---- walks ------------------------------------------------------------- */

typedef struct {
    gw_arena_t *a;
    uint64_t sink; /* defeats dead-code elimination */
} walk_t;

static void copy(walk_t *w, const char *s, size_t n)
{
    char *d = gw_arena_dup(w->a, s, n);
    w->sink += (uintptr_t)d & 0xff;
}

static int64_t time_of_real(double t)
{
    double sec = floor(t);
    return (int64_t)sec * 1000000000 + llround((t - sec) * 1e6) * 1000;
}

static void walk_jansson(walk_t *w, json_t *root)
{
    size_t i;
    json_t *pt;

    json_array_foreach(root, i, pt) {
        const char *k;
        json_t *v;
        json_object_foreach(pt, k, v) {
            if (!strcmp(k, "series")) {
                copy(w, json_string_value(v), json_string_length(v));
            } else if (!strcmp(k, "time")) {
                if (json_is_integer(v))
                    w->sink += (uint64_t)json_integer_value(v) * 1000000000;
                else if (json_is_real(v))
                    w->sink += (uint64_t)time_of_real(json_real_value(v));
                else
                    w->sink += json_string_length(v);
            } else if (!strcmp(k, "tags") || !strcmp(k, "fields")) {
                int tags = k[0] == 't';
                const char *fk;
                json_t *fv;
                json_object_foreach(v, fk, fv) {
                    char num[32];
                    copy(w, fk, strlen(fk));
                    switch (json_typeof(fv)) {
                    case JSON_STRING:
                        copy(w, json_string_value(fv), json_string_length(fv));
                        break;
                    case JSON_INTEGER:
                        if (tags)
                            copy(w, num, (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                                                          json_integer_value(fv)));
                        else
                            w->sink += (uint64_t)json_integer_value(fv);
                        break;
                    case JSON_REAL:
                        w->sink += (uint64_t)json_real_value(fv);
                        break;
                    default:
                        w->sink += json_is_true(fv);
                    }
                }
            }
        }
    }
}

static void walk_cjson(walk_t *w, cJSON *root)
{
    cJSON *pt;

    cJSON_ArrayForEach(pt, root) {
        cJSON *v;
        cJSON_ArrayForEach(v, pt) {
            const char *k = v->string;
            if (!strcmp(k, "series")) {
                copy(w, v->valuestring, strlen(v->valuestring));
            } else if (!strcmp(k, "time")) {
                if (cJSON_IsNumber(v))
                    w->sink += (uint64_t)time_of_real(v->valuedouble);
                else
                    w->sink += strlen(v->valuestring);
            } else if (!strcmp(k, "tags") || !strcmp(k, "fields")) {
                int tags = k[0] == 't';
                cJSON *fv;
                cJSON_ArrayForEach(fv, v) {
                    char num[32];
                    copy(w, fv->string, strlen(fv->string));
                    if (cJSON_IsString(fv)) {
                        copy(w, fv->valuestring, strlen(fv->valuestring));
                    } else if (cJSON_IsNumber(fv)) {
                        /* The best cJSON can do: 1.0 and 1 look the same,
                         * integers beyond 2^53 are already rounded. */
                        double d = fv->valuedouble;
                        if (tags)
                            copy(w, num, (size_t)snprintf(num, sizeof(num), "%.17g", d));
                        else if (d == floor(d) && fabs(d) < 9007199254740992.0)
                            w->sink += (uint64_t)(int64_t)d;
                        else
                            w->sink += (uint64_t)d;
                    } else {
                        w->sink += cJSON_IsTrue(fv);
                    }
                }
            }
        }
    }
}

/* ---- timing ------------------------------------------------------------ */

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum { JANSSON, JANSSON_DUP, JANSSON_BUMP, JANSSON_BUMP_NODECREF, CJSON, CJSON_BUMP, GW_JSON,
       NVARIANTS };
static const char *const names[] = {
    "jansson, malloc",
    "jansson, malloc, JSON_REJECT_DUPLICATES",
    "jansson, thread-local bump",
    "jansson, thread-local bump, no json_decref",
    "cJSON, malloc",
    "cJSON, thread-local bump",
    "gw_json_parse (gateway/json.c as built)",
};

static double run(int variant, const char *body, size_t len, int iters, walk_t *w)
{
    gw_points_t pts = {0};
    gw_result_t res;
    double t0 = now_sec();

    for (int it = 0; it < iters; it++) {
        gw_arena_reset(w->a);
        if (variant == GW_JSON) {
            memset(&res, 0, sizeof(res));
            pts.n = 0;
            if (gw_json_parse(body, len, 0, w->a, &pts, &res) || pts.n != NPOINTS) {
                fprintf(stderr, "gw_json_parse failed: %s\n", res.err_msg);
                exit(1);
            }
        } else if (variant == CJSON || variant == CJSON_BUMP) {
            cJSON *root;
            if (variant == CJSON_BUMP)
                bump_begin();
            root = cJSON_ParseWithLength(body, len);
            if (!root) {
                fprintf(stderr, "cJSON failed\n");
                exit(1);
            }
            walk_cjson(w, root);
            cJSON_Delete(root);
            bump_end();
        } else {
            json_error_t err;
            json_t *root;
            if (variant == JANSSON_BUMP || variant == JANSSON_BUMP_NODECREF)
                bump_begin();
            root = json_loadb(body, len, variant == JANSSON_DUP ? JSON_REJECT_DUPLICATES : 0, &err);
            if (!root) {
                fprintf(stderr, "jansson failed: %s\n", err.text);
                exit(1);
            }
            walk_jansson(w, root);
            /* The region holds all of it: dropping it is free. */
            if (variant != JANSSON_BUMP_NODECREF)
                json_decref(root);
            bump_end();
        }
    }
    gw_points_free(&pts);
    return (now_sec() - t0) * 1e9 / ((double)iters * NPOINTS);
}

int main(int argc, char **argv)
{
    int iters;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    int only = argc > 3 ? atoi(argv[3]) : -1; /* one variant, for valgrind */
    size_t len;
    char *body = make_body(&len);
    walk_t w = {gw_arena_create(1 << 20), 0};
    double best[NVARIANTS];
    cJSON_Hooks hooks = {bump_malloc, bump_free};
    json_malloc_t jm;
    json_free_t jf;

    /* `json_choice dump` writes the body, for profiling elsewhere. */
    if (argc > 1 && !strcmp(argv[1], "dump")) {
        fwrite(body, 1, len, stdout);
        free(body);
        gw_arena_destroy(w.a);
        return 0;
    }
    iters = argc > 1 ? atoi(argv[1]) : 200;
    json_get_alloc_funcs(&jm, &jf);
    printf("body: %zu bytes, %d points (%.0f bytes/point), %d iterations x %d rounds\n", len,
           NPOINTS, (double)len / NPOINTS, iters, rounds);
    for (int v = 0; v < NVARIANTS; v++)
        best[v] = 1e30;
    /* Interleave the variants so that frequency drift hits all alike. */
    for (int r = 0; r < rounds; r++) {
        for (int v = 0; v < NVARIANTS; v++) {
            double ns;
            if (only >= 0 && v != only)
                continue;
            if (v == JANSSON_BUMP || v == JANSSON_BUMP_NODECREF)
                json_set_alloc_funcs(bump_malloc, bump_free);
            if (v == CJSON_BUMP)
                cJSON_InitHooks(&hooks);
            ns = run(v, body, len, iters, &w);
            if (v == JANSSON_BUMP || v == JANSSON_BUMP_NODECREF)
                json_set_alloc_funcs(jm, jf);
            if (v == CJSON_BUMP)
                cJSON_InitHooks(NULL);
            if (ns < best[v])
                best[v] = ns;
        }
    }
    for (int v = 0; v < NVARIANTS; v++)
        if (only < 0 || v == only)
            printf("%d %-45s %7.0f ns/point\n", v, names[v], best[v]);
    printf("(sink %llu)\n", (unsigned long long)w.sink);
    gw_arena_destroy(w.a);
    free(body);
    free(bump.base);
    return 0;
}
