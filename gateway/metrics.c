/* metrics.c — the process-wide counters. */
#include "metrics.h"

gw_metrics_t gw_metrics = {.healthy = 1};
