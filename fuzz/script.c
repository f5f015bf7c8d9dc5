/* fuzz/script.c — libFuzzer harness for the script-result marshalling
 * (gateway/script_run.c: what a script returns, back into points).
 *
 * One engine is opened on a config whose only script, fuzz/script/fuzz.lua,
 * reads the point's field `d` (the input, hex-encoded) as a little program
 * that builds its return value. Each input then goes through
 * gw_harness_run, the path of POST /v1/debug/transform: the pipeline with a
 * trace (parse, run the script, check and encode the results), answer JSON. Property: the answer is
 * valid JSON with a "points" array; no crash, leak or sanitizer report. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roundtrip.h"
#include "../gateway/log.h"
#include "../gateway/harness.h"
#include "../gateway/pipeline.h"

#ifndef FUZZ_SCRIPT_DIR
#define FUZZ_SCRIPT_DIR "fuzz/script"
#endif

static gw_harness_t *engine;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char cfgpath[64], err[512];
    FILE *f;

    snprintf(cfgpath, sizeof(cfgpath), "/tmp/luagw-fuzz-script.%d.yaml", (int)getpid());
    f = fopen(cfgpath, "w");
    if (!f)
        abort();
    fprintf(f, "scripts:\n  dir: %s\n  timeout_ms: 200\n  memory_limit: 64MiB\n"
               "  series:\n    fz: fuzz.lua\nlog:\n  level: error\n", FUZZ_SCRIPT_DIR);
    fclose(f);
    gw_log_set_level(GW_LOG_ERROR); /* script failures are expected */
    engine = gw_harness_open(cfgpath, err, sizeof(err));
    unlink(cfgpath);
    if (!engine) {
        fprintf(stderr, "fuzz/script.c: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hexd[] = "0123456789abcdef";
    static const char head[] = "fz,host=a d=\"";
    static const char tail[] = "\",n=1i,u=7u,f=1.5,b=t,s=\"x\" 1700000000000000000\n";
    size_t n = 0, cap = sizeof(head) + 2 * size + sizeof(tail);
    char *body = malloc(cap), *json = NULL;
    json_error_t jerr;
    json_t *doc;

    if (size > 4096)
        size = 4096; /* the program, not the input size, is what matters */
    memcpy(body, head, sizeof(head) - 1), n = sizeof(head) - 1;
    for (size_t i = 0; i < size; i++) {
        body[n++] = hexd[data[i] >> 4];
        body[n++] = hexd[data[i] & 15];
    }
    memcpy(body + n, tail, sizeof(tail) - 1), n += sizeof(tail) - 1;
    CHECK(gw_harness_run(engine, GW_FMT_LINEPROTO, body, n, 1, &json) == 0, "transform ENOMEM");
    doc = json_loads(json, 0, &jerr);
    CHECK(doc != NULL, "answer is not JSON (%s): %s", jerr.text, json);
    CHECK(json_is_array(json_object_get(doc, "points")), "no points array: %s", json);
    json_decref(doc);
    free(json);
    free(body);
    return 0;
}
