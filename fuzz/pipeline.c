/* fuzz/pipeline.c — libFuzzer harness for the whole pipeline: a body
 * through gw_pipeline_run, the entry point of the HTTP worker (parse,
 * limits, scripts with the real engine, limits again, encode).
 *
 * Input: byte 0 picks the script (modes[] below; fuzz/pipeline/fuzz.lua
 * says what each does), byte 1 the format (bit 0: JSON), the limits
 * (bits 1-2: profiles[]) and the encoder flags (bit 3: GW_LP_NO_UINT, as
 * for InfluxDB 1.x); the rest is the body. Series m, cpu, a and fuzz have
 * the script; points of other series pass unscripted. FUZZ_DEBUG=1 in the
 * environment prints the oracle's points and the encoded lines.
 *
 * The same body is also parsed alone, as the oracle of the properties:
 *   - no crash, leak or sanitizer report;
 *   - every point is accounted for: accepted + rejected is what the parser
 *     rejected plus, per point it took, 1 if a limit refuses it (before any
 *     script), else what the script makes of it (fan-out 3, drop 0, the
 *     others 1; but a point the encoder refuses anyway, say for an empty
 *     key, may also fail a fan-out's return value and pass once);
 *     unscripted points 1. A body over max_points or max_line_bytes is
 *     refused whole, and only such a body;
 *   - luagw's parser reads every encoded line back as one point within
 *     the limits, and the line passes line_checks[];
 *   - points that must come out as they went in (unscripted, or scripts
 *     identity, error and fanout) do, exactly, each as often as the script
 *     makes it, when the encoder takes them at all; the other scripts'
 *     points keep their series and order;
 *   - script memo (memo(enrich), its cache kept from one input to the
 *     next) writes exactly the bytes, and answers exactly, what enrich
 *     (the same function, not memoized) does.
 * Reused Lua tables that leak keys from one point into the next make the
 * identity and fanout outputs differ from their inputs (fuzz.lua). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roundtrip.h"
#include "../gateway/config.h"
#include "../gateway/json.h"
#include "../gateway/log.h"
#include "../gateway/pipeline.h"
#include "../gateway/script.h"

#ifndef FUZZ_SRC_DIR
#define FUZZ_SRC_DIR "fuzz"
#endif

#define NOW_NS 1700000000000000000LL

/* printf arguments for the start of a line in a message: "%.*s". */
#define SHOW(line, n) (int)((n) > 300 ? 300 : (n)), (line)

typedef struct {
    const char *name; /* params.mode of fuzz.lua */
    uint32_t mult;    /* points the script makes of one point */
    int keeps;        /* each of them is the point as it came */
} fuzz_mode_t;

static const fuzz_mode_t modes[] = {
    {"identity", 1, 1}, {"error", 1, 1},      {"fanout", 3, 1},  {"drop", 0, 1},
    {"add_tags", 1, 0}, {"add_fields", 1, 0}, {"delete", 1, 0},  {"enrich", 1, 0},
    {"memo", 1, 0},
};
#define MODE_ENRICH 7
#define MODE_MEMO 8
#define NMODES (sizeof(modes) / sizeof(modes[0]))

static const gw_limits_t profiles[4] = {
    /* listen's defaults (config.c) */
    {1000000, 1 << 20, 256, 1024, 1024, 65536},
    /* tight: scripts that add break them */
    {0, 0, 4, 8, 16, 64},
    /* none */
    {0, 0, 0, 0, 0, 0},
    /* the body limits, and room for the 257-field point */
    {8, 256, 16, 300, 64, 1024},
};

/* The series with the script: scripts.series names three, and fuzz.lua,
 * being in scripts.dir, is also the script of series fuzz. */
static const char *const scripted_series[] = {"m", "cpu", "a", "fuzz"};

/* Further checks of each encoded line: each gets the line (ending in
 * '\n'), the point luagw's parser read back from it and the encoder flags
 * it was written with, and aborts through CHECK on a disagreement. Add one
 * here. */
typedef void (*line_check_t)(const char *line, size_t n, const gw_point_t *back, unsigned flags);

/* A line ends in '\n' (string values may hold more of them). */
static void check_line_end(const char *line, size_t n, const gw_point_t *back, unsigned flags)
{
    CHECK(n > 0 && line[n - 1] == '\n', "a line without its newline: %.*s", SHOW(line, n));
    (void)back, (void)flags;
}

/* A line written for InfluxDB 1.x is one influxd stores exactly as the
 * point luagw read back from it (fuzz/influx_model.c, the model of its
 * scanner), unless it is the 100 * 2^k-tag point influxd answers 500. */
static void check_influx_model(const char *line, size_t n, const gw_point_t *back, unsigned flags)
{
    char why[512];

    if (!(flags & GW_LP_NO_UINT) || influx_poison(back))
        return;
    CHECK(im_check_encoded(line, n, back, why, sizeof(why)) == 0,
          "influxd would not store the line as luagw reads it: %s: %.*s", why, SHOW(line, n));
}

static const line_check_t line_checks[] = {check_line_end, check_influx_model};

static gw_pipeline_t *workers[NMODES][2]; /* [mode][GW_LP_NO_UINT] */
static gw_script_set_t *sets[NMODES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[64], err[512];

    gw_log_set_level(GW_LOG_ERROR); /* script errors are expected */
    snprintf(path, sizeof(path), "/tmp/luagw-fuzz-pipeline.%d.yaml", (int)getpid());
    for (size_t m = 0; m < NMODES; m++) {
        FILE *f = fopen(path, "w");
        gw_config_t *cfg;

        CHECK(f != NULL, "cannot write %s", path);
        fprintf(f, "scripts:\n  dir: %s/pipeline\n  timeout_ms: 1000\n  memory_limit: 64MiB\n  series:\n",
                FUZZ_SRC_DIR);
        for (size_t i = 0; i < sizeof(scripted_series) / sizeof(scripted_series[0]); i++)
            if (strcmp(scripted_series[i], "fuzz") != 0)
                fprintf(f, "    %s: fuzz.lua\n", scripted_series[i]);
        fprintf(f, "  params:\n    mode: %s\nlog:\n  level: error\n", modes[m].name);
        fclose(f);
        cfg = gw_config_load(path, err, sizeof(err));
        CHECK(cfg != NULL, "%s", err);
        sets[m] = gw_script_set_load(cfg, err, sizeof(err));
        CHECK(sets[m] != NULL, "%s", err);
        gw_config_free(cfg);
    }
    unlink(path);
    return 0;
}

/* The worker of mode m with encoder flags flags, created on first use. */
static gw_pipeline_t *worker(size_t m, unsigned flags)
{
    gw_pipeline_t **w = &workers[m][flags ? 1 : 0];

    if (!*w) {
        *w = gw_pipeline_create(flags);
        CHECK(*w && gw_pipeline_pin_scripts(*w, sets[m]) == 0, "out of memory");
    }
    return *w;
}

static int is_scripted(gw_str_t series)
{
    for (size_t i = 0; i < sizeof(scripted_series) / sizeof(scripted_series[0]); i++)
        if (series.n == strlen(scripted_series[i]) && memcmp(series.p, scripted_series[i], series.n) == 0)
            return 1;
    return 0;
}

/* Is p within l? Written from listen.max_* as documented, apart from
 * pipeline.c's checks; and its series key and longest field key, unescaped,
 * within InfluxDB's 65535 bytes (docs/hardening.md). */
static int within(const gw_limits_t *l, const gw_point_t *p)
{
    size_t maxk = l->max_key_bytes ? l->max_key_bytes : SIZE_MAX;
    size_t maxv = l->max_value_bytes ? l->max_value_bytes : SIZE_MAX;
    size_t key = p->series.n, fkey = 0;

    if ((l->max_tags && p->ntags > l->max_tags) || (l->max_fields && p->nfields > l->max_fields) ||
        p->series.n > maxk)
        return 0;
    for (uint32_t i = 0; i < p->ntags; i++) {
        if (p->tags[i].key.n > maxk || p->tags[i].val.n > maxv)
            return 0;
        key += 2 + p->tags[i].key.n + p->tags[i].val.n;
    }
    for (uint32_t i = 0; i < p->nfields; i++) {
        if (p->fields[i].key.n > maxk || (p->fields[i].type == GW_FIELD_STRING && p->fields[i].v.s.n > maxv))
            return 0;
        if (p->fields[i].key.n > fkey)
            fkey = p->fields[i].key.n;
    }
    return key + 4 + fkey <= 65535;
}

/* Would the encoder take p (a copy: it sorts the tags in place)? */
static int encodable(const gw_point_t *p, unsigned flags, gw_arena_t *a)
{
    gw_point_t q = *p;
    gw_buf_t out = {0};
    char err[256];
    int rc;

    q.tags = gw_arena_alloc(a, (p->ntags ? p->ntags : 1) * sizeof(*q.tags));
    CHECK(q.tags, "out of memory");
    if (p->ntags)
        memcpy(q.tags, p->tags, p->ntags * sizeof(*q.tags));
    rc = gw_lp_encode(&out, &q, flags, err, sizeof(err));
    CHECK(rc == 0 || rc == 1, "encode returned %d", rc);
    gw_buf_free(&out);
    return rc == 0;
}

/* Does b (read back from its line) hold what a held when it was sent?
 * Tags in any order; under GW_LP_NO_UINT unsigned fields come back as
 * integers. */
static int same_as_sent(const gw_point_t *a, const gw_point_t *b, unsigned flags)
{
    if (!gw_str_eq(a->series, b->series) || a->time_ns != b->time_ns || a->ntags != b->ntags ||
        a->nfields != b->nfields)
        return 0;
    for (uint32_t i = 0; i < a->ntags; i++) {
        int j = gw_point_find_tag(b, a->tags[i].key);
        if (j < 0 || !gw_str_eq(a->tags[i].val, b->tags[j].val))
            return 0;
    }
    for (uint32_t i = 0; i < a->nfields; i++) {
        const gw_field_t *fa = &a->fields[i];
        int j = gw_point_find_field(b, fa->key);
        const gw_field_t *fb = j < 0 ? NULL : &b->fields[j];
        int type = fa->type == GW_FIELD_UINT && (flags & GW_LP_NO_UINT) ? GW_FIELD_INT : fa->type;

        if (!fb || fb->type != type)
            return 0;
        switch (fa->type) {
        case GW_FIELD_FLOAT:
            if (memcmp(&fa->v.f, &fb->v.f, sizeof(double)) && !(fa->v.f == 0 && fb->v.f == 0))
                return 0;
            break;
        case GW_FIELD_INT: case GW_FIELD_UINT:
            if (fa->v.u != fb->v.u)
                return 0;
            break;
        case GW_FIELD_BOOL:
            if (fa->v.b != fb->v.b)
                return 0;
            break;
        default:
            if (!gw_str_eq(fa->v.s, fb->v.s))
                return 0;
        }
    }
    return 1;
}

/* What the oracle knows of each point the parser took. */
typedef struct {
    uint32_t expect;   /* lines it must become */
    uint32_t seen;     /* lines matched to it so far */
    int exact;         /* each line is the point as sent */
} want_t;

/* Match the encoded line (read back as q) to the input points in order.
 * An exact point must come out exactly, want->expect times, unless a type
 * conflict inside the request refused it (checked at the end). Another (a
 * script changed it) keeps its series, and a check may have refused it: a
 * line of another series then belongs to a later point. (Exact and changed
 * points never share a series: whether a script runs depends on it.) */
static void match(const gw_points_t *in, want_t *want, uint32_t *j, const gw_point_t *q, unsigned flags,
                  const char *line, size_t n)
{
    for (;; (*j)++) {
        want_t *wt;

        CHECK(*j < in->n, "a line no input point accounts for: %.*s", SHOW(line, n));
        wt = &want[*j];
        if (wt->seen == wt->expect)
            continue;
        if (wt->exact) {
            /* Not this one: it must have been refused as a type conflict
             * inside the request (checked at the end), and the line
             * belongs to a later point. */
            if (!same_as_sent(&in->v[*j], q, flags))
                continue;
            break;
        }
        if (gw_str_eq(in->v[*j].series, q->series))
            break;
        wt->expect = wt->seen;
    }
    want[*j].seen++;
}

/* Is a line of body longer than max? */
static int has_long_line(const char *body, size_t len, size_t max)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || body[i] == '\n') {
            if (i - start > max)
                return 1;
            start = i + 1;
        }
    return 0;
}

/* A field's type as written: u is i for InfluxDB 1.x (typecheck.c). */
static int written_type(const gw_field_t *f, unsigned flags)
{
    return f->type == GW_FIELD_UINT && (flags & GW_LP_NO_UINT) ? GW_FIELD_INT : f->type;
}

/* Does one of p's fields have another type in a line of the output, with
 * the same series and key? Then the pipeline refused p (or some of its
 * copies) as a type conflict inside the request, as influxd would. */
static int conflicts(const gw_point_t *p, unsigned flags, const char *out, const uint32_t *ends, uint32_t nout,
                     gw_arena_t *a2, gw_points_t *back)
{
    for (uint32_t k = 0; k < nout; k++) {
        gw_result_t r2;
        const gw_point_t *q;

        memset(&r2, 0, sizeof(r2));
        gw_arena_reset(a2);
        back->n = 0;
        CHECK(gw_lp_parse(out + (k ? ends[k - 1] : 0), ends[k] - (k ? ends[k - 1] : 0), 1, 0, a2, back, &r2) == 0,
              "reparse ENOMEM");
        q = &back->v[0];
        if (back->n != 1 || !gw_str_eq(q->series, p->series))
            continue;
        for (uint32_t f = 0; f < p->nfields; f++) {
            int g = gw_point_find_field(q, p->fields[f].key);
            if (g >= 0 && written_type(&q->fields[g], flags) != written_type(&p->fields[f], flags))
                return 1;
        }
    }
    return 0;
}

/* Mode memo's check: the body through mode enrich's worker gives the same
 * answer and the same bytes as res and out (outlen) did. */
static void same_as_enrich(const char *body, size_t size, gw_ingest_t *ing, const gw_limits_t *lim,
                           unsigned flags, const gw_result_t *res, const char *out, size_t outlen)
{
    gw_pipeline_t *w = worker(MODE_ENRICH, flags);
    gw_result_t r2;
    const uint32_t *ends;
    const char *o2;
    size_t len2;
    uint32_t n2;

    gw_pipeline_set_limits(w, lim);
    memset(&r2, 0, sizeof(r2));
    CHECK(gw_pipeline_run(w, ing, body, size, &r2) == 0, "enrich: gw_pipeline_run failed");
    o2 = gw_pipeline_output(w, &len2, &ends, &n2);
    CHECK(r2.accepted == res->accepted && r2.rejected == res->rejected && strcmp(r2.err_msg, res->err_msg) == 0,
          "memo accepted %u rejected %u (%s), enrich %u and %u (%s)", res->accepted, res->rejected, res->err_msg,
          r2.accepted, r2.rejected, r2.err_msg);
    CHECK(len2 == outlen && (!outlen || memcmp(o2, out, outlen) == 0), "memo wrote other bytes than enrich:\n%.*s\n---\n%.*s",
          SHOW(out, outlen), SHOW(o2, len2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_arena_t *a, *a2;
    static gw_points_t in, back;
    static want_t *want;
    static uint32_t wantcap;
    const fuzz_mode_t *mode;
    const gw_limits_t *lim;
    gw_ingest_t ing = {0};
    gw_result_t res, pres;
    gw_pipeline_t *w;
    unsigned flags;
    const uint32_t *ends;
    const char *out;
    size_t outlen;
    uint32_t nout, total, least, j = 0;
    char *body;
    int rc, too_large;

    if (size < 2)
        return 0;
    if (!a) {
        a = gw_arena_create(65536);
        a2 = gw_arena_create(65536);
    }
    mode = &modes[data[0] % NMODES];
    ing.format = data[1] & 1 ? GW_FMT_JSON : GW_FMT_LINEPROTO;
    lim = &profiles[(data[1] >> 1) & 3];
    flags = data[1] & 8 ? GW_LP_NO_UINT : 0;
    ing.ns_per_unit = 1;
    ing.now_ns = NOW_NS;
    size -= 2;
    body = malloc(size ? size : 1); /* exact size: a read past the end is caught */
    memcpy(body, data + 2, size);

    /* The oracle: the parser alone. */
    gw_arena_reset(a);
    in.n = 0;
    memset(&pres, 0, sizeof(pres));
    if (ing.format == GW_FMT_JSON)
        rc = gw_json_parse(body, size, NOW_NS, a, &in, &pres);
    else
        rc = gw_lp_parse(body, size, 1, NOW_NS, a, &in, &pres);
    CHECK(rc == 0, "parse ENOMEM");
    if (in.n > wantcap) {
        want = realloc(want, in.n * sizeof(*want));
        CHECK(want, "out of memory");
        wantcap = in.n;
    }
    total = least = pres.rejected;
    for (uint32_t i = 0; i < in.n; i++) {
        const gw_point_t *p = &in.v[i];
        int scripted = is_scripted(p->series);

        want[i].seen = 0;
        if (!within(lim, p)) {
            want[i].expect = 0; /* rejected before any script */
            want[i].exact = 1;
            total++, least++;
            continue;
        }
        want[i].expect = scripted ? mode->mult : 1;
        want[i].exact = !scripted || mode->keeps;
        total += want[i].expect;
        least += want[i].expect;
        if (want[i].exact && !encodable(p, flags, a)) {
            /* Refused after the script; but what the encoder refuses (an
             * empty key the JSON parser let through) may also fail the
             * script's return value, and the point then passes once. */
            if (scripted && want[i].expect > 1)
                least -= want[i].expect - 1;
            want[i].expect = 0;
        }
    }
    if (getenv("FUZZ_DEBUG"))
        for (uint32_t i = 0; i < in.n; i++)
            fprintf(stderr, "in %u: src %u %.*s: %u tags %u fields, expect %u%s\n", i, in.v[i].src,
                    SHOW(in.v[i].series.p, in.v[i].series.n), in.v[i].ntags, in.v[i].nfields, want[i].expect,
                    want[i].exact ? " exact" : "");
    too_large = (lim->max_points && in.n > lim->max_points) ||
                (ing.format != GW_FMT_JSON && lim->max_line_bytes && has_long_line(body, size, lim->max_line_bytes));

    /* The pipeline, as the HTTP worker runs it. */
    w = worker((size_t)(mode - modes), flags);
    gw_pipeline_set_limits(w, lim);
    memset(&res, 0, sizeof(res));
    rc = gw_pipeline_run(w, &ing, body, size, &res);
    CHECK(rc == 0 || rc == GW_PIPELINE_TOO_LARGE, "gw_pipeline_run returned %d", rc);
    out = gw_pipeline_output(w, &outlen, &ends, &nout);
    CHECK((rc == GW_PIPELINE_TOO_LARGE) == too_large, "body refused whole: %d, expected %d", rc, too_large);
    if (rc == GW_PIPELINE_TOO_LARGE) {
        CHECK(nout == 0 && res.accepted == 0, "a refused body left %u lines", nout);
        free(body);
        return 0;
    }
    if (getenv("FUZZ_DEBUG"))
        for (uint32_t k = 0; k < nout; k++)
            fprintf(stderr, "out %u: %.*s", k, SHOW(out + (k ? ends[k - 1] : 0), ends[k] - (k ? ends[k - 1] : 0)));
    CHECK(res.accepted == nout, "accepted %u, encoded %u", res.accepted, nout);
    CHECK(res.accepted + res.rejected <= total && res.accepted + res.rejected >= least,
          "mode %s: accepted %u + rejected %u, expected %u (at least %u)", mode->name, res.accepted,
          res.rejected, total, least);

    for (uint32_t k = 0; k < nout; k++) {
        const char *line = out + (k ? ends[k - 1] : 0);
        size_t n = ends[k] - (k ? ends[k - 1] : 0);
        gw_result_t r2;

        CHECK(ends[k] <= outlen && (!k || ends[k] > ends[k - 1]), "bad line ends");
        gw_arena_reset(a2);
        back.n = 0;
        memset(&r2, 0, sizeof(r2));
        CHECK(gw_lp_parse(line, n, 1, 0, a2, &back, &r2) == 0, "reparse ENOMEM");
        CHECK(back.n == 1 && r2.rejected == 0, "encoded line does not parse back (%s): %.*s", r2.err_msg,
              SHOW(line, n));
        CHECK(within(lim, &back.v[0]), "encoded line beyond the limits: %.*s", SHOW(line, n));
        for (size_t c = 0; c < sizeof(line_checks) / sizeof(line_checks[0]); c++)
            line_checks[c](line, n, &back.v[0], flags);
        match(&in, want, &j, &back.v[0], flags, line, n);
    }
    for (uint32_t i = 0; i < in.n; i++)
        CHECK(!want[i].exact || want[i].seen == want[i].expect ||
                  conflicts(&in.v[i], flags, out, ends, nout, a2, &back),
              "point %u (line/index %u): %u of %u lines stored", i, in.v[i].src, want[i].seen, want[i].expect);
    if (mode == &modes[MODE_MEMO])
        same_as_enrich(body, size, &ing, lim, flags, &res, out, outlen);
    free(body);
    return 0;
}
