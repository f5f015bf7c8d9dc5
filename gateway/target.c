/* target.c — where a read for a database goes, see target.h. */
#include "target.h"

#include <errno.h>
#include <string.h>

#include "outconf.h"

/* The database (1.x) or bucket (2.x) cfg writes to of its own. */
static const char *own_db(const gw_config_t *cfg)
{
    return cfg->monitoring.version == 2 ? cfg->monitoring.bucket : cfg->monitoring.database;
}

static const char *or_none(const char *s, int use)
{
    return use && s ? s : "";
}

int gw_target_for_db(gw_outputs_t *outs, const char *db, gw_target_t *t)
{
    int n = outs ? gw_outputs_count(outs) : 0, pick = 0;
    const gw_outconf_t *oc;
    const gw_config_t *cfg;

    for (int i = 0; db && *db && i < n; i++) {
        const char *own = own_db(gw_outputs_conf(outs, i)->cfg);
        if (own && strcmp(own, db) == 0) {
            pick = i;
            break;
        }
    }
    if (n <= 0 || !(oc = gw_outputs_conf(outs, pick)) || !oc->cfg->monitoring.host || !*oc->cfg->monitoring.host)
        return -ENOENT;
    cfg = oc->cfg;
    *t = (gw_target_t){
        .name = oc->name,
        .version = cfg->monitoring.version,
        .host = cfg->monitoring.host,
        .port = cfg->monitoring.port,
        .use_ssl = cfg->monitoring.use_ssl,
        .tls_verify = cfg->monitoring.tls_verify,
        .tls_ca = or_none(cfg->monitoring.tls_ca, 1),
        .user = or_none(cfg->monitoring.user, cfg->monitoring.version == 1),
        .password = or_none(cfg->monitoring.password, cfg->monitoring.version == 1),
        .token = or_none(cfg->monitoring.token, cfg->monitoring.version == 2),
        .connect_timeout = cfg->monitoring.timeout < 10 ? cfg->monitoring.timeout : 10,
    };
    return 0;
}

int gw_target_may_read(const gw_tenant_t *tn, const char *db)
{
    if (!tn || !tn->ndatabases)
        return 1;
    for (uint32_t i = 0; db && *db && i < tn->ndatabases; i++)
        if (strcmp(tn->databases[i], db) == 0)
            return 1;
    return 0;
}
