/* fanout.c — destinations, shared batches, lanes and per-output limits;
 * see fanout.h and docs/outputs.md.
 *
 * A shared batch carries one link per memory lane it is sealed into
 * (allocated with the batch, so sealing cannot fail) and a reference count
 * under the lock. A lane is a FIFO of those links (memory) or a spool; its
 * `current` batch is the one its sender has taken. Destinations are a hash
 * table keyed by (outputs, database, retention policy, forced). */
#include "fanout_int.h"

_Static_assert((int)GW_SPOOL_FULL == (int)GW_FANOUT_FULL && (int)GW_SPOOL_CLOSED == (int)GW_FANOUT_CLOSED &&
                   (int)GW_SPOOL_TOO_BIG == (int)GW_FANOUT_TOO_BIG,
               "a spool's answer is passed on as the buffer's");

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */

fbatch_t *fanout_batch_new(gw_fanout_t *f, int nlinks)
{
    fbatch_t *b = f->spare;

    if (b) {
        f->spare = b->next;
        f->nspare--;
        b->data.len = b->ends.len = 0;
    } else if (!(b = calloc(1, sizeof(*b)))) {
        return NULL;
    }
    if (nlinks > b->nlinks) {
        link_t *l = realloc(b->links, (size_t)nlinks * sizeof(*l));
        if (!l) {
            b->next = f->spare; /* keep it for later */
            f->spare = b;
            f->nspare++;
            return NULL;
        }
        b->links = l;
        b->nlinks = nlinks;
    }
    b->npoints = 0;
    b->opened_at = 0;
    b->refs = 0;
    b->next = NULL;
    return b;
}

static void batch_free(fbatch_t *b)
{
    if (!b)
        return;
    gw_buf_free(&b->data);
    gw_buf_free(&b->ends);
    free(b->links);
    free(b);
}

/* Keep b for reuse, or free it. Under the lock. */
void fanout_recycle(gw_fanout_t *f, fbatch_t *b)
{
    if (f->nspare >= SPARE_MAX || b->data.cap > SPARE_BYTES || b->ends.cap > SPARE_BYTES) {
        batch_free(b);
        return;
    }
    b->next = f->spare;
    f->spare = b;
    f->nspare++;
}

void fanout_unref(gw_fanout_t *f, fbatch_t *b)
{
    if (--b->refs <= 0)
        fanout_recycle(f, b);
}

/* Give back the slack a growing buffer keeps beyond its length. */
static void trim(gw_buf_t *buf)
{
    char *p;

    if (buf->cap - buf->len <= TRIM_MIN || buf->cap - buf->len <= buf->len / 4 || buf->len == 0)
        return;
    if ((p = realloc(buf->data, buf->len))) {
        buf->data = p;
        buf->cap = buf->len;
    }
}

/* Append points [from, to) of a part to b. 0 or -ENOMEM. */
static int append(fbatch_t *b, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to)
{
    size_t start = from ? ends[from - 1] : 0, base = b->data.len;

    if (gw_buf_reserve(&b->ends, 4 * (size_t)(to - from)) ||
        gw_buf_append(&b->data, lines + start, ends[to - 1] - start))
        return -ENOMEM;
    for (uint32_t i = from; i < to; i++) {
        uint32_t e = (uint32_t)(base + ends[i] - start);
        memcpy(b->ends.data + b->ends.len, &e, 4);
        b->ends.len += 4;
    }
    b->npoints += to - from;
    return 0;
}

/* How many of points [from, n) fit in a batch already holding have bytes of
 * lines and room points: at least one when the batch is empty. */
static uint32_t take_count(const uint32_t *ends, uint32_t from, uint32_t n, uint32_t room, size_t have)
{
    size_t start = from ? ends[from - 1] : 0;
    uint32_t take = n - from < room ? n - from : room;

    if (have + (ends[from + take - 1] - start) <= GW_BATCH_MAX_BYTES)
        return take;
    for (take = 0; take < room && from + take < n; take++)
        if (have + (ends[from + take] - start) > GW_BATCH_MAX_BYTES)
            break;
    return take || have ? take : 1;
}

/* ------------------------------------------------------------------------ */
/* Lanes                                                                     */

/* A database name as a directory name: letters, digits, '_' and '-' as
 * they are, '.' too but not first, anything else %XX. */
static void put_dirname(gw_buf_t *b, const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_' || c == '-' || (c == '.' && i))
            gw_buf_putc(b, (char)c);
        else
            gw_buf_printf(b, "%%%02X", c);
    }
}

/* The reverse of put_dirname into out (size n+1 at least); 0 or -1. */
static int get_dirname(const char *s, size_t n, char *out)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (s[i] != '%') {
            out[k++] = s[i];
            continue;
        }
        if (i + 2 >= n || sscanf(s + i + 1, "%2x", &v) != 1 || !isxdigit((unsigned char)s[i + 2]) || !v)
            return -1;
        out[k++] = (char)v;
        i += 2;
    }
    out[k] = '\0';
    return k ? 0 : -1;
}

/* <spool_dir>/databases/<db>[,<rp>] (a literal ',' is encoded in names). */
static char *lane_dir(const output_t *out, const char *db, const char *rp)
{
    gw_buf_t b = {0};

    gw_buf_printf(&b, "%s/databases/", out->o.spool_dir);
    put_dirname(&b, db);
    if (rp && *rp) {
        gw_buf_putc(&b, ',');
        put_dirname(&b, rp);
    }
    if (gw_buf_putc(&b, '\0')) {
        gw_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static gw_spool_t *open_spool(const output_t *out, const char *dir, char *err, size_t errlen)
{
    gw_spool_opts_t o = {
        .dir = dir,
        .max_bytes = out->o.spool_max_bytes,
        .fsync = out->o.fsync,
        .fsync_interval = out->o.fsync_interval,
        .drop_oldest = out->o.drop_oldest,
    };
    return gw_spool_open(&o, err, errlen);
}

void fanout_lane_destroy(gw_fanout_t *f, lane_t *l)
{
    if (!l)
        return;
    if (l->state && f->lane_free)
        f->lane_free(l->state);
    gw_spool_destroy(l->spool);
    batch_free(l->filling);
    if (l->out->spooled)
        batch_free(l->current);
    free(l->db);
    free(l->rp);
    free(l);
}

/* A new lane of out for db/rp (NULL: its own), its spool opened if it has
 * one; appended to out's lanes. NULL with the reason in err. Under the
 * lock (or before anyone else sees f). */
static lane_t *lane_add(gw_fanout_t *f, output_t *out, const char *db, const char *rp, char *err, size_t errlen)
{
    lane_t *l = calloc(1, sizeof(*l)), **tail;
    char *dir = NULL;

    if (!l || (db && !(l->db = strdup(db))) || (rp && !(l->rp = strdup(rp)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    l->out = out;
    l->used_at = gw_clock_mono();
    if (out->spooled) {
        dir = db ? lane_dir(out, db, rp) : strdup(out->o.spool_dir);
        if (!dir) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (!(l->spool = open_spool(out, dir, err, errlen)))
            goto fail;
    }
    free(dir);
    for (tail = &out->lanes; *tail; tail = &(*tail)->next)
        ;
    *tail = l;
    out->nlanes++;
    out->gen++;
    return l;

fail:
    free(dir);
    fanout_lane_destroy(f, l);
    return NULL;
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The lane of out that points for db/rp (forced: whatever passthrough says)
 * go to, made when new. NULL when out has max_databases lanes already, or
 * one cannot be made (logged). Under the lock. */
static lane_t *lane_for(gw_fanout_t *f, output_t *out, const char *db, const char *rp, int forced)
{
    char err[256];
    lane_t *l;

    if (!db || (!forced && !out->o.passthrough))
        return out->lanes;
    if (!out->o.uses_rp)
        rp = NULL;
    if (strcmp(db, out->o.database) == 0 && (!rp || strcmp(rp, out->o.rp) == 0))
        return out->lanes;
    for (l = out->lanes->next; l; l = l->next)
        if (strcmp(l->db, db) == 0 && same(l->rp, rp))
            return l;
    if (out->nlanes >= out->o.max_databases)
        return NULL;
    if (!(l = lane_add(f, out, db, rp, err, sizeof(err)))) {
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
        gw_log_limited(&lim, 10.0, GW_LOG_ERROR, "cannot buffer for a database", "output=%s database=\"%s\" error=\"%s\"",
                       out->o.name, db, err);
    }
    return l;
}

/* ------------------------------------------------------------------------ */
/* Destinations                                                              */

static uint32_t hash_dest(uint64_t mask, const char *db, const char *rp, int forced)
{
    uint32_t h = 2166136261u;
    const char *parts[2] = {db ? db : "", rp ? rp : ""};

    for (int k = 0; k < 8; k++)
        h = (h ^ (uint32_t)(mask >> (8 * k) & 0xff)) * 16777619u;
    for (int i = 0; i < 2; i++)
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
    return (h ^ (uint32_t)forced ^ (db ? 0x100u : 0) ^ (rp ? 0x200u : 0)) * 16777619u;
}

void fanout_group_free(group_t *g)
{
    if (!g)
        return;
    free(g->db);
    free(g->rp);
    free(g->mem);
    free(g->spl);
    free(g);
}

/* Does any output of mask use the database a destination names? */
static int names_matter(const gw_fanout_t *f, uint64_t mask, int forced)
{
    for (int o = 0; o < f->n; o++)
        if ((mask >> o & 1) && (forced || f->out[o].o.passthrough))
            return 1;
    return 0;
}

/* A new destination: its lanes (made where new) and batching. NULL when
 * out of memory or an output has no lane for it (*full gets that output).
 * Under the lock. */
static group_t *group_new(gw_fanout_t *f, uint64_t mask, const char *db, const char *rp, int forced, uint64_t *full)
{
    group_t *g = calloc(1, sizeof(*g));
    int k = __builtin_popcountll(mask);

    if (!g || (db && !(g->db = strdup(db))) || (rp && !(g->rp = strdup(rp))) ||
        !(g->mem = calloc((size_t)k, sizeof(*g->mem))) || !(g->spl = calloc((size_t)k, sizeof(*g->spl))))
        goto fail;
    g->mask = mask;
    g->forced = forced;
    for (int o = 0; o < f->n; o++) {
        output_t *out = &f->out[o];
        lane_t *l;
        if (!(mask >> o & 1))
            continue;
        if (!(l = lane_for(f, out, db, rp, forced))) {
            *full |= (uint64_t)1 << o;
            continue;
        }
        if (out->spooled) {
            g->spl[g->nspl++] = l;
            continue;
        }
        g->mem[g->nmem++] = l;
        if (!g->batch_size || out->o.batch_size < g->batch_size)
            g->batch_size = out->o.batch_size;
        if (!g->period || out->o.flushing_period < g->period)
            g->period = out->o.flushing_period;
    }
    if (*full)
        goto fail;
    for (int i = 0; i < g->nmem; i++)
        g->mem[i]->groups++;
    for (int i = 0; i < g->nspl; i++)
        g->spl[i]->groups++;
    return g;

fail:
    fanout_group_free(g);
    return NULL;
}

/* The destination of d, made when new, pinned. NULL as group_new, or when
 * GROUPS_MAX are in use (*full gets every output of d). Under the lock. */
static group_t *group_get(gw_fanout_t *f, const gw_fanout_dest_t *d, uint64_t *full)
{
    char db[1024], rp[1024];
    const char *dbp = NULL, *rpp = NULL;
    uint64_t mask = d->outputs & (f->n >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << f->n) - 1);
    group_t *g, **slot;
    uint32_t h;

    if (d->db.p && d->db.n && names_matter(f, mask, d->forced)) {
        snprintf(db, sizeof(db), "%.*s", (int)(d->db.n < 1023 ? d->db.n : 1023), d->db.p);
        dbp = db;
        if (d->rp.p && d->rp.n) {
            snprintf(rp, sizeof(rp), "%.*s", (int)(d->rp.n < 1023 ? d->rp.n : 1023), d->rp.p);
            rpp = rp;
        }
    }
    h = hash_dest(mask, dbp, rpp, d->forced && dbp);
    slot = &f->buckets[h & (f->nbuckets - 1)];
    for (g = *slot; g; g = g->next)
        if (g->hash == h && g->mask == mask && g->forced == (d->forced && dbp) && same(g->db, dbp) &&
            same(g->rp, rpp))
            break;
    if (!g) {
        if (f->ngroups >= GROUPS_MAX) {
            *full |= mask;
            return NULL;
        }
        if (!(g = group_new(f, mask, dbp, rpp, d->forced && dbp, full)))
            return NULL;
        g->hash = h;
        g->next = *slot;
        *slot = g;
        f->ngroups++;
    }
    g->pins++;
    g->used_at = gw_clock_mono();
    return g;
}

/* Seal g's open batch: a link in each of its memory lanes. Under the lock. */
void fanout_seal(gw_fanout_t *f, group_t *g)
{
    fbatch_t *b = g->open;

    if (!b)
        return;
    trim(&b->data);
    trim(&b->ends);
    g->open = NULL;
    b->refs = g->nmem;
    f->seq++;
    for (int i = 0; i < g->nmem; i++) {
        lane_t *l = g->mem[i];
        link_t *k = &b->links[i];
        *k = (link_t){b, f->seq, NULL};
        if (l->tail)
            l->tail->next = k;
        else
            l->head = k;
        l->tail = k;
        l->points += b->npoints;
        pthread_cond_signal(&l->out->cv);
    }
}

/* Append a part to g's open batches. Returns the points appended (fewer
 * only when out of memory). Under the lock. */
static uint32_t append_group(gw_fanout_t *f, group_t *g, const gw_fanout_part_t *p)
{
    uint32_t done = 0;

    while (done < p->npoints) {
        fbatch_t *b = g->open;
        uint32_t take;

        if (!b) {
            if (!(b = fanout_batch_new(f, g->nmem)))
                break;
            b->opened_at = gw_clock_mono();
            g->open = b;
            /* Its senders may be waiting without a deadline: let them time it. */
            for (int i = 0; i < g->nmem; i++)
                pthread_cond_signal(&g->mem[i]->out->cv);
        }
        take = take_count(p->ends, done, p->npoints, g->batch_size - b->npoints, b->data.len);
        if (take == 0) {
            fanout_seal(f, g);
            continue;
        }
        if (append(b, p->lines, p->ends, done, done + take))
            break;
        done += take;
        if (b->npoints >= g->batch_size || b->data.len >= GW_BATCH_MAX_BYTES)
            fanout_seal(f, g);
    }
    return done;
}

/* ------------------------------------------------------------------------ */
/* Room                                                                      */

static int fits(const output_t *out, uint64_t points, uint64_t bytes)
{
    return out->points + points <= out->o.buffer_limit && out->bytes + bytes <= out->o.buffer_limit_bytes;
}

/* Log the points overflow dropped since the last such line: at most every
 * DROP_LOG_EVERY seconds, or now when forced. Under the lock. */
void fanout_log_drops(output_t *out, int force)
{
    double now = gw_clock_mono();

    if (!out->dropped_unlogged || (!force && now - out->last_drop_log < DROP_LOG_EVERY))
        return;
    gw_log_warn("buffer full: dropped the oldest points (overflow: drop_oldest)",
                "output=%s points=%llu buffer_limit=%u buffer_limit_bytes=%llu", out->o.name,
                (unsigned long long)out->dropped_unlogged, out->o.buffer_limit,
                (unsigned long long)out->o.buffer_limit_bytes);
    out->dropped_unlogged = 0;
    out->last_drop_log = now;
}

/* overflow: drop_oldest. Drop out's oldest waiting batches (sealing the
 * open ones it shares when nothing else is left) until points of bytes
 * fit; the batches being sent are not touched. Under the lock. */
static void drop_oldest(gw_fanout_t *f, output_t *out, uint64_t points, uint64_t bytes)
{
    uint64_t lost = 0;

    while (!fits(out, points, bytes)) {
        lane_t *oldest = NULL;
        group_t *open = NULL;
        fbatch_t *b;
        for (lane_t *l = out->lanes; l; l = l->next)
            if (l->head && (!oldest || l->head->seq < oldest->head->seq))
                oldest = l;
        if (!oldest) {
            for (uint32_t i = 0; i < f->nbuckets && !open; i++)
                for (group_t *g = f->buckets[i]; g && !open; g = g->next)
                    if (g->open && g->nmem && (g->mask >> out->idx & 1))
                        open = g;
            if (!open)
                break;
            fanout_seal(f, open);
            continue;
        }
        b = oldest->head->b;
        oldest->head = oldest->head->next;
        if (!oldest->head)
            oldest->tail = NULL;
        oldest->points -= b->npoints;
        out->points -= b->npoints;
        out->bytes -= batch_bytes(b);
        lost += b->npoints;
        fanout_unref(f, b);
    }
    if (lost) {
        GW_COUNT(points_overflowed, lost);
        out->overflowed += lost;
        out->dropped_unlogged += lost;
        fanout_log_drops(out, 0);
    }
}

/* The bytes out's spools hold, over its lanes. Under the lock. */
static uint64_t spool_bytes(const output_t *out)
{
    uint64_t n = 0;

    for (const lane_t *l = out->lanes; l; l = l->next)
        n += gw_spool_bytes(l->spool);
    return n;
}

/* What a push asks of each output. */
typedef struct {
    uint64_t points[64], bytes[64];
    uint64_t outputs; /* those asked anything */
} need_t;

/* Is there room for need in every output, making it where drop_oldest
 * allows? 0, or GW_FANOUT_FULL / _TOO_BIG with *full the outputs. Under
 * the lock. */
static int room(gw_fanout_t *f, const need_t *need, uint64_t *full)
{
    uint64_t big = 0, none = 0;

    for (int o = 0; o < f->n; o++) {
        output_t *out = &f->out[o];
        uint64_t bit = (uint64_t)1 << o, p = need->points[o], b = need->bytes[o];
        if (!(need->outputs & bit))
            continue;
        if (out->spooled) {
            /* a record's 20-byte header and the segment's own, roughly */
            if (b + 64 > out->o.spool_max_bytes)
                big |= bit;
            else if (!out->o.drop_oldest && spool_bytes(out) + b + 64 > out->o.spool_max_bytes)
                none |= bit;
            continue;
        }
        if (p > out->o.buffer_limit || b > out->o.buffer_limit_bytes) {
            big |= bit;
            continue;
        }
        if (!fits(out, p, b) && out->o.drop_oldest)
            drop_oldest(f, out, p, b);
        if (!fits(out, p, b))
            none |= bit;
    }
    *full |= big ? big : none;
    return big ? GW_FANOUT_TOO_BIG : none ? GW_FANOUT_FULL : 0;
}

/* Give back room taken for need in the memory outputs. Under the lock. */
static void unreserve(gw_fanout_t *f, const need_t *need)
{
    for (int o = 0; o < f->n; o++)
        if ((need->outputs >> o & 1) && !f->out[o].spooled) {
            f->out[o].points -= need->points[o];
            f->out[o].bytes -= need->bytes[o];
        }
}

/* Append every part to the spools of its destination, outside the lock
 * (the lanes are pinned). 0, or the first failure (GW_SPOOL_*) with *full
 * its output. */
static int append_spools(gw_fanout_t *f, const gw_fanout_part_t *parts, group_t **g, int nparts, uint64_t *full)
{
    for (int i = 0; i < nparts; i++)
        for (int k = 0; g[i] && k < g[i]->nspl; k++) {
            lane_t *l = g[i]->spl[k];
            int rc = gw_spool_append(l->spool, parts[i].lines, parts[i].len, parts[i].ends, parts[i].npoints);
            if (rc) {
                *full |= (uint64_t)1 << l->out->idx;
                return rc;
            }
        }
    return 0;
}

static void pin_spools(group_t **g, int nparts, int by)
{
    for (int i = 0; i < nparts; i++)
        for (int k = 0; g[i] && k < g[i]->nspl; k++)
            g[i]->spl[k]->pins += by;
}

/* ------------------------------------------------------------------------ */
/* Pushing                                                                   */

/* The groups of parts (pinned) and what they ask of each output. 0, or an
 * error with *full set. Under the lock. */
static int resolve(gw_fanout_t *f, const gw_fanout_part_t *parts, int nparts, group_t **g, need_t *need,
                   int *spools, uint64_t *full)
{
    for (int i = 0; i < nparts; i++) {
        const gw_fanout_part_t *p = &parts[i];
        uint64_t bytes = (uint64_t)p->len + 4 * (uint64_t)p->npoints;
        if (!p->npoints)
            continue;
        if (!(g[i] = group_get(f, &p->dest, full)))
            return *full ? GW_FANOUT_LANES : -ENOMEM;
        for (int o = 0; o < f->n; o++)
            if (g[i]->mask >> o & 1) {
                need->points[o] += p->npoints;
                need->bytes[o] += bytes;
                need->outputs |= (uint64_t)1 << o;
            }
        *spools |= g[i]->nspl > 0;
    }
    return 0;
}

static void unpin(group_t **g, int nparts)
{
    for (int i = 0; i < nparts; i++)
        if (g[i])
            g[i]->pins--;
}

int gw_fanout_push(gw_fanout_t *f, const gw_fanout_part_t *parts, int nparts, uint64_t *full)
{
    group_t *small[8], **g = nparts <= 8 ? small : calloc((size_t)nparts, sizeof(*g));
    need_t need;
    int rc, spools = 0;

    *full = 0;
    if (!g)
        return -ENOMEM;
    memset(g, 0, (size_t)nparts * sizeof(*g));
    memset(&need, 0, sizeof(need));
    pthread_mutex_lock(&f->mu);
    rc = f->closed ? GW_FANOUT_CLOSED : resolve(f, parts, nparts, g, &need, &spools, full);
    if (!rc)
        rc = room(f, &need, full);
    if (rc)
        goto out;
    for (int o = 0; o < f->n; o++) /* taken now: the room stays ours while the spools are written */
        if ((need.outputs >> o & 1) && !f->out[o].spooled) {
            f->out[o].points += need.points[o];
            f->out[o].bytes += need.bytes[o];
        }
    if (spools) {
        pin_spools(g, nparts, 1);
        pthread_mutex_unlock(&f->mu);
        rc = append_spools(f, parts, g, nparts, full);
        pthread_mutex_lock(&f->mu);
        pin_spools(g, nparts, -1);
        for (int o = 0; o < f->n; o++)
            if ((need.outputs >> o & 1) && f->out[o].spooled)
                pthread_cond_signal(&f->out[o].cv);
        if (rc) {
            unreserve(f, &need);
            goto out;
        }
    }
    for (int i = 0; i < nparts; i++) {
        uint32_t done;
        if (!g[i] || !g[i]->nmem)
            continue;
        done = append_group(f, g[i], &parts[i]);
        if (done < parts[i].npoints) {
            /* Out of memory: what was appended stays; the rest gives its room back. */
            const uint32_t *e = parts[i].ends;
            uint64_t np = parts[i].npoints - done, nb = parts[i].len - (done ? e[done - 1] : 0) + 4 * np;
            for (int k = 0; k < g[i]->nmem; k++) {
                g[i]->mem[k]->out->points -= np;
                g[i]->mem[k]->out->bytes -= nb;
            }
            for (int j = i + 1; j < nparts; j++)
                for (int k = 0; g[j] && k < g[j]->nmem; k++) {
                    g[j]->mem[k]->out->points -= parts[j].npoints;
                    g[j]->mem[k]->out->bytes -= parts[j].len + 4 * (uint64_t)parts[j].npoints;
                }
            rc = -ENOMEM;
            break;
        }
    }
out:
    unpin(g, nparts);
    pthread_mutex_unlock(&f->mu);
    if (g != small)
        free(g);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */

void gw_fanout_stats(gw_fanout_t *f, int o, gw_fanout_stats_t *st)
{
    output_t *out = &f->out[o];
    double now = gw_clock_mono();

    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&f->mu);
    st->spooled = out->spooled;
    st->overflowed = out->overflowed;
    st->lanes = out->nlanes;
    for (lane_t *l = out->lanes; l; l = l->next) {
        st->parked += l->held_until > now;
        if (l->spool) {
            uint64_t a, s;
            gw_spool_counts(l->spool, &a, &s);
            st->points += gw_spool_points(l->spool);
            st->bytes += gw_spool_bytes(l->spool);
            st->damaged += gw_spool_corrupt(l->spool);
            st->appends += a;
            st->syncs += s;
        }
    }
    if (!out->spooled) {
        st->points = out->points;
        st->bytes = out->bytes;
        st->limit_points = out->o.buffer_limit;
        st->limit_bytes = out->o.buffer_limit_bytes;
    } else {
        st->limit_bytes = out->o.spool_max_bytes;
    }
    pthread_mutex_unlock(&f->mu);
}

void gw_fanout_each_lane(gw_fanout_t *f, int o, void (*fn)(const gw_fanout_lane_t *l, void *ud), void *ud)
{
    double now = gw_clock_mono();

    pthread_mutex_lock(&f->mu);
    for (lane_t *l = f->out[o].lanes; l; l = l->next) {
        gw_fanout_lane_t li = {
            .db = l->db,
            .rp = l->rp,
            .points = l->spool ? gw_spool_points(l->spool) : l->points,
            .parked_for = l->held_until > now ? l->held_until - now : 0,
        };
        fn(&li, ud);
    }
    pthread_mutex_unlock(&f->mu);
}

void gw_fanout_set_idle(gw_fanout_t *f, double group_idle, double lane_idle)
{
    f->group_idle = group_idle;
    f->lane_idle = lane_idle;
    f->sweep_every = group_idle < 1.0 ? group_idle / 2 : 1.0;
}

uint32_t gw_fanout_groups(gw_fanout_t *f)
{
    uint32_t n;

    pthread_mutex_lock(&f->mu);
    n = f->ngroups;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Life                                                                      */

static int copy_output(output_t *out, const gw_fanout_output_t *o, int idx)
{
    pthread_condattr_t ca;

    out->o = *o;
    out->idx = idx;
    out->spooled = o->spool_dir && *o->spool_dir;
    out->o.name = strdup(o->name ? o->name : "");
    out->o.database = strdup(o->database ? o->database : "");
    out->o.rp = strdup(o->rp ? o->rp : "");
    out->o.spool_dir = strdup(out->spooled ? o->spool_dir : "");
    if (!out->o.max_databases)
        out->o.max_databases = 1;
    if (!out->o.batch_size)
        out->o.batch_size = 1;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&out->cv, &ca);
    pthread_condattr_destroy(&ca);
    return out->o.name && out->o.database && out->o.rp && out->o.spool_dir ? 0 : -1;
}

/* The lanes an earlier run left points in, under <spool_dir>/databases:
 * opened again; those left empty are closed. 0, or -1 with err. */
static int recover(gw_fanout_t *f, output_t *out, char *err, size_t errlen)
{
    gw_buf_t path = {0};
    struct dirent *e;
    DIR *d;
    int rc = 0;

    gw_buf_printf(&path, "%s/databases", out->o.spool_dir);
    if (gw_buf_putc(&path, '\0') || !(d = opendir(path.data))) {
        gw_buf_free(&path);
        return 0; /* none (or unreadable: new lanes will say) */
    }
    while (!rc && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        char *db = malloc(n + 1), *rp = malloc(n + 1), *comma = strchr(e->d_name, ',');
        lane_t *l;
        if (!db || !rp) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        } else if (e->d_name[0] != '.' &&
                   !get_dirname(e->d_name, comma ? (size_t)(comma - e->d_name) : n, db) &&
                   (!comma || !get_dirname(comma + 1, n - (size_t)(comma + 1 - e->d_name), rp))) {
            if (!(l = lane_add(f, out, db, comma ? rp : NULL, err, errlen))) {
                rc = -1;
            } else if (!gw_spool_points(l->spool) && !gw_spool_unread(l->spool)) {
                lane_t **pl = &out->lanes;
                while (*pl != l)
                    pl = &(*pl)->next;
                *pl = NULL;
                out->nlanes--;
                fanout_lane_destroy(f, l);
            } else {
                gw_log_info("spool: points left for a database, delivering them", "output=%s database=\"%s\" points=%llu",
                            out->o.name, db, (unsigned long long)gw_spool_points(l->spool));
            }
        }
        free(db);
        free(rp);
    }
    closedir(d);
    gw_buf_free(&path);
    return rc;
}

gw_fanout_t *gw_fanout_create(const gw_fanout_output_t *outputs, int n, void (*lane_free)(void *state),
                              char *err, size_t errlen)
{
    gw_fanout_t *f = calloc(1, sizeof(*f));
    char why[512];

    if (!f || n < 1 || n > 64) {
        snprintf(err, errlen, f ? "between 1 and 64 outputs" : "out of memory");
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->lane_free = lane_free;
    gw_fanout_set_idle(f, GROUP_IDLE, LANE_IDLE);
    f->nbuckets = 256;
    if (!(f->buckets = calloc(f->nbuckets, sizeof(*f->buckets))) || !(f->out = calloc((size_t)n, sizeof(*f->out)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (; f->n < n; f->n++) {
        output_t *out = &f->out[f->n];
        if (copy_output(out, &outputs[f->n], f->n)) {
            f->n++;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (!lane_add(f, out, NULL, NULL, why, sizeof(why)) || (out->spooled && recover(f, out, why, sizeof(why)))) {
            f->n++;
            snprintf(err, errlen, "output %s: %s", out->o.name, why);
            goto fail;
        }
    }
    return f;

fail:
    gw_fanout_destroy(f);
    return NULL;
}

void gw_fanout_destroy(gw_fanout_t *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; f->buckets && i < f->nbuckets; i++)
        while (f->buckets[i]) {
            group_t *g = f->buckets[i];
            f->buckets[i] = g->next;
            batch_free(g->open);
            fanout_group_free(g);
        }
    for (int o = 0; o < f->n; o++) {
        output_t *out = &f->out[o];
        while (out->lanes) {
            lane_t *l = out->lanes;
            out->lanes = l->next;
            /* Batches referenced from several lanes are freed once: drop
             * this lane's references first. */
            for (link_t *k = l->head; k;) {
                link_t *next = k->next;
                if (--k->b->refs <= 0)
                    batch_free(k->b);
                k = next;
            }
            if (!out->spooled && l->current && --l->current->refs <= 0)
                batch_free(l->current);
            if (!out->spooled)
                l->current = NULL;
            fanout_lane_destroy(f, l);
        }
        free(out->snap);
        free((char *)out->o.name);
        free((char *)out->o.database);
        free((char *)out->o.rp);
        free((char *)out->o.spool_dir);
        pthread_cond_destroy(&out->cv);
    }
    while (f->spare) {
        fbatch_t *b = f->spare;
        f->spare = b->next;
        batch_free(b);
    }
    free(f->buckets);
    free(f->out);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
