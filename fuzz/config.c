/* fuzz/config.c — libFuzzer harness for the YAML configuration loader
 * (gateway/config.c, libyaml).
 *
 * The loader reads a file, so each input is written to one temp file per
 * process. Property: gw_config_load either returns a config (freed again)
 * or NULL with a non-empty one-line message; never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roundtrip.h"
#include "../gateway/config.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(path, sizeof(path), "/tmp/luagw-fuzz-config.%d.yaml", (int)getpid());
    /* ${NAME} expansion reads the environment: give it something to find. */
    setenv("LUAGW_FUZZ", "value", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    FILE *f = fopen(path, "wb");
    gw_config_t *cfg;

    CHECK(f != NULL, "cannot write %s", path);
    CHECK(fwrite(data, 1, size, f) == size || size == 0, "short write");
    fclose(f);
    err[0] = '\0';
    cfg = gw_config_load(path, err, sizeof(err));
    if (cfg)
        gw_config_free(cfg);
    else
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL, "no or multi-line message: %s", err);
    return 0;
}
