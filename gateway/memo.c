/* memo.c — a worker's memo cache (memo.h).
 *
 * Entries hang from a power-of-two bucket array (chained by next) and sit
 * in a ring of max_entries slots that the clock hand sweeps to find a
 * victim. An entry is one allocation (struct gw_memo_entry below), and
 * its line text made in advance another. An entry holds its key (build_key:
 * no two shapes share bytes); a lookup compares whole keys. A clean
 * line's key is neither built nor copied to be looked up: it is hashed and
 * compared piece by piece where it lies, in the line (raw_hash, raw_eq);
 * any other point's is built into a reused buffer and hashed whole. */
#include "memo.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "lineproto.h"

enum { KIND_POINT = 0, KIND_DROP, KIND_UNCACHEABLE };

#define VERIFY_EVERY 1024 /* with verify: besides each key's 1st, 2nd, 4th... hit, one hit in this many */

/* An entry is one allocation, in this order: the struct; its constant
 * fields and tags (the ones the run set); tsrc and fsrc, one int32 per
 * output tag and field: >= 0, the input's entry of that index (the same
 * key and value: for tags the key pins it, for fields the run left it as
 * it was), < 0, constant number -1 - src; the key bytes; the constants'
 * strings. ~350 bytes for a point of 6 tags and 4 fields, 2 of each set. */
struct gw_memo_entry {
    struct gw_memo_entry *next; /* the bucket's chain, or the list of evicted entries */
    uint64_t hash;
    uint32_t keylen;
    uint32_t hits;
    uint8_t kind;               /* KIND_* */
    uint8_t ref;                /* hit since the clock hand last passed */
    uint8_t kept;               /* the input's fields first, in order, unchanged */
    uint32_t ntags, nfields;    /* of the output point */
    uint32_t nctags, ncfields;  /* constants among them */
    gw_field_t *cfields;        /* in this allocation, strings too */
    gw_tag_t *ctags;            /* likewise */
    int32_t *tsrc, *fsrc;       /* in this allocation */
    char *key;                  /* in this allocation */
    gw_lp_pre_t *pre;           /* owned, or NULL: its line text made in advance (make_pre) */
};

struct gw_memo {
    gw_memo_entry_t **buckets;  /* owned (the entries through the ring) */
    uint32_t mask;
    gw_memo_entry_t **ring;     /* owned: every entry, once */
    uint32_t cap, n, hand;
    gw_memo_entry_t *dead;      /* owned: evicted during this run */
    int verify;
    uint64_t nhits;             /* hits since creation (the verify sample) */
    char *key;                  /* owned: the key being looked up */
    size_t keycap, keylen;
    gw_buf_t line;              /* owned: make_pre's line */
    gw_buf_t req;               /* owned: the request's token and database, each after its length:
                                 * the end of every key (gw_memo_set_req) */
    gw_memo_stats_t st;         /* since the last flush */
};

/* gw_memo_stats_t, member by member */
#define NSTATS (sizeof(gw_memo_stats_t) / sizeof(uint64_t))
static _Atomic uint64_t totals[NSTATS];

gw_memo_t *gw_memo_create(uint32_t max_entries, int verify)
{
    gw_memo_t *m = calloc(1, sizeof(*m));
    uint32_t nb = 16;

    if (!m || !max_entries)
        goto fail;
    while (nb < max_entries && nb < (1u << 30))
        nb <<= 1;
    m->buckets = calloc(nb, sizeof(*m->buckets));
    m->ring = calloc(max_entries, sizeof(*m->ring));
    if (!m->buckets || !m->ring)
        goto fail;
    m->mask = nb - 1;
    m->cap = max_entries;
    m->verify = verify;
    return m;

fail:
    gw_memo_destroy(m);
    return NULL;
}

void gw_memo_destroy(gw_memo_t *m)
{
    if (!m)
        return;
    if (m->ring && m->buckets)
        gw_memo_clear(m);
    gw_memo_reap(m);
    free(m->buckets);
    free(m->ring);
    free(m->key);
    gw_buf_free(&m->line);
    gw_buf_free(&m->req);
    free(m);
}

uint32_t gw_memo_capacity(const gw_memo_t *m)
{
    return m ? m->cap : 0;
}

int gw_memo_verifying(const gw_memo_t *m)
{
    return m && m->verify;
}

static void entry_free(gw_memo_entry_t *e)
{
    if (e)
        free(e->pre);
    free(e);
}

void gw_memo_clear(gw_memo_t *m)
{
    for (uint32_t i = 0; i < m->n; i++)
        entry_free(m->ring[i]);
    memset(m->buckets, 0, ((size_t)m->mask + 1) * sizeof(*m->buckets));
    m->n = m->hand = 0;
}

void gw_memo_reap(gw_memo_t *m)
{
    while (m->dead) {
        gw_memo_entry_t *e = m->dead;
        m->dead = e->next;
        entry_free(e);
    }
}

/* ------------------------------------------------------------------------ */
/* Keys */

static int key_room(gw_memo_t *m, size_t more)
{
    if (m->keylen + more <= m->keycap)
        return 0;
    {
        size_t cap = m->keycap ? m->keycap : 256;
        char *k;
        while (cap < m->keylen + more)
            cap *= 2;
        if (!(k = realloc(m->key, cap)))
            return -ENOMEM;
        m->key = k;
        m->keycap = cap;
    }
    return 0;
}

static inline char *put_len(char *w, size_t n)
{
    uint32_t v = (uint32_t)n;
    memcpy(w, &v, 4);
    return w + 4;
}

static inline char *put_str(char *w, gw_str_t s)
{
    w = put_len(w, s.n);
    memcpy(w, s.p, s.n);
    return w + s.n;
}

/* The slice of clean line-protocol point p that stands for its series and
 * tags in its key (build_key), or {NULL, 0} when p is not such a point. */
static inline gw_str_t raw_span(const gw_point_t *p)
{
    if ((p->lp_clean & GW_LP_CLEAN) && p->lp_tail.p >= p->series.p)
        return (gw_str_t){p->series.p, (size_t)(p->lp_tail.p - p->series.p)};
    return (gw_str_t){NULL, 0};
}

/* The key of point p of chain cid into m->key (m->keylen): a kind byte,
 * the chain, then
 *   for a point the line-protocol parser vouched for (GW_LP_CLEAN): the
 *   text of its series and tags, as one slice of the line (from series.p
 *   to the field set, lp_tail). Its tags are exactly that text's, in its
 *   order, unescaped (point.h), so equal text means equal series and tags;
 *   one copy and one comparison instead of one per name;
 *   for any other point: the series, the tag count, each tag's key and
 *   value, each with its length before it;
 * then the field count and each field key with its length before it, and
 * the request's token and database (m->req), each with its length.
 * The kind byte keeps the two forms apart. 0 or -ENOMEM. */
static int build_key(gw_memo_t *m, uint16_t cid, const gw_point_t *p)
{
    gw_str_t span = raw_span(p);
    int raw = span.p != NULL;
    size_t need;
    char *w;

    if (!raw)
        span = p->series;
    need = 1 + 2 + 4 + span.n + 8 + (size_t)p->nfields * 4 + m->req.len;
    for (uint32_t i = 0; !raw && i < p->ntags; i++)
        need += 8 + p->tags[i].key.n + p->tags[i].val.n;
    for (uint32_t i = 0; i < p->nfields; i++)
        need += p->fields[i].key.n;
    m->keylen = 0;
    if (key_room(m, need))
        return -ENOMEM;
    w = m->key;
    *w++ = (char)raw;
    memcpy(w, &cid, 2);
    w = put_str(w + 2, span);
    if (!raw) {
        w = put_len(w, p->ntags);
        for (uint32_t i = 0; i < p->ntags; i++) {
            w = put_str(w, p->tags[i].key);
            w = put_str(w, p->tags[i].val);
        }
    }
    w = put_len(w, p->nfields);
    for (uint32_t i = 0; i < p->nfields; i++)
        w = put_str(w, p->fields[i].key);
    memcpy(w, m->req.data, m->req.len);
    w += m->req.len;
    m->keylen = (size_t)(w - m->key);
    return 0;
}

/* The hash of the key build_key makes of clean point p (span: raw_span),
 * from its pieces where they lie: the chain, the span, each field key,
 * the request's token and database. */
static uint64_t raw_hash(const gw_memo_t *m, uint16_t cid, gw_str_t span, const gw_point_t *p)
{
    uint64_t h = gw_hash_piece(gw_hash_basis ^ ((uint64_t)p->nfields << 16 | cid), span.p, span.n);

    for (uint32_t i = 0; i < p->nfields; i++)
        h = gw_hash_piece(h, p->fields[i].key.p, p->fields[i].key.n);
    if (m->req.len > 8) /* a token or a database */
        h = gw_hash_piece(h, m->req.data, m->req.len);
    return gw_hash_pieces_end(h);
}

/* Is e's key the one build_key makes of clean point p (span: raw_span)?
 * Read against the stored key's lengths, never past its end. */
static int raw_eq(const gw_memo_t *m, const gw_memo_entry_t *e, uint16_t cid, gw_str_t span, const gw_point_t *p)
{
    const char *k = e->key, *end = e->key + e->keylen;
    uint32_t v;

    if (e->keylen < 1 + 2 + 4 + span.n + 4 || k[0] != 1 || memcmp(k + 1, &cid, 2))
        return 0;
    memcpy(&v, k + 3, 4);
    if (v != span.n || memcmp(k + 7, span.p, span.n))
        return 0;
    k += 7 + span.n;
    memcpy(&v, k, 4);
    if (v != p->nfields)
        return 0;
    k += 4;
    for (uint32_t i = 0; i < p->nfields; i++) {
        gw_str_t fk = p->fields[i].key;
        if (end - k < 4)
            return 0;
        memcpy(&v, k, 4);
        k += 4;
        if (v != fk.n || (size_t)(end - k) < v || !gw_str_eq((gw_str_t){k, v}, fk))
            return 0;
        k += v;
    }
    return (size_t)(end - k) == m->req.len && memcmp(k, m->req.data, m->req.len) == 0;
}

/* The hash of the key in m->key, built by build_key for point p. */
static uint64_t key_hash(const gw_memo_t *m, uint16_t cid, const gw_point_t *p)
{
    gw_str_t span = raw_span(p);

    return span.p ? raw_hash(m, cid, span, p) : gw_hash_wide(m->key, m->keylen);
}

/* The entry of the key in m->key (hash h), or NULL. */
static gw_memo_entry_t *find(gw_memo_t *m, uint64_t h)
{
    for (gw_memo_entry_t *e = m->buckets[h & m->mask]; e; e = e->next)
        if (e->hash == h && e->keylen == m->keylen && memcmp(e->key, m->key, m->keylen) == 0)
            return e;
    return NULL;
}

/* The entry of clean point p's key (span: raw_span), or NULL: find
 * without building the key. */
static gw_memo_entry_t *find_raw(gw_memo_t *m, uint16_t cid, gw_str_t span, const gw_point_t *p)
{
    uint64_t h = raw_hash(m, cid, span, p);

    for (gw_memo_entry_t *e = m->buckets[h & m->mask]; e; e = e->next)
        if (e->hash == h && raw_eq(m, e, cid, span, p))
            return e;
    return NULL;
}

/* Entry e's line text made in advance (point.h, GW_LP_CLEAN_PRE), when its
 * key is a clean line's text (build_key) and it is found in point in: then
 * every point of the key has the series and tags of in, byte for byte, and
 * gets e's constants, so its line differs from in's only in what the
 * encoder copies from the line (the field set, the time) or writes from
 * the point (the time). The text is what gw_lp_encode writes for in's
 * output, cut where those go. Made at a key's first hit, not when it is
 * learnt: a shape seen once (a cache too small for the shapes, every point
 * a miss) costs neither the time nor the memory. 0 also when it cannot be
 * made that way (hits then go the long way); -ENOMEM (likewise). */
static int make_pre(gw_memo_t *m, gw_memo_entry_t *e, const gw_point_t *in);

int gw_memo_set_req(gw_memo_t *m, gw_str_t token, gw_str_t db)
{
    m->req.len = 0;
    if (gw_buf_reserve(&m->req, 8 + token.n + db.n))
        return -ENOMEM;
    if (!token.p)
        token = (gw_str_t){"", 0};
    if (!db.p)
        db = (gw_str_t){"", 0};
    m->req.len = (size_t)(put_str(put_str(m->req.data, token), db) - m->req.data);
    return 0;
}

int gw_memo_lookup(gw_memo_t *m, uint16_t cid, const gw_point_t *p, const gw_memo_entry_t **out)
{
    gw_str_t span = raw_span(p);
    gw_memo_entry_t *e;

    if (span.p)
        e = find_raw(m, cid, span, p);
    else if (build_key(m, cid, p))
        return -ENOMEM;
    else
        e = find(m, gw_hash_wide(m->key, m->keylen));
    *out = e;
    if (!e) {
        m->st.misses++;
        return GW_MEMO_MISS;
    }
    if (e->kind == KIND_UNCACHEABLE) {
        m->st.uncacheable++;
        return GW_MEMO_UNCACHEABLE;
    }
    e->ref = 1;
    if (++e->hits == 1 && span.p)
        (void)make_pre(m, e, p); /* ENOMEM: written the long way */
    if (m->verify && ((e->hits & (e->hits - 1)) == 0 || ++m->nhits % VERIFY_EVERY == 0)) {
        m->st.verified++;
        return GW_MEMO_VERIFY;
    }
    m->st.hits++;
    return GW_MEMO_HIT;
}

/* ------------------------------------------------------------------------ */
/* Effects */

void gw_memo_size(const gw_memo_entry_t *e, uint32_t *ntags, uint32_t *nfields)
{
    *ntags = e->ntags;
    *nfields = e->nfields;
}

uint32_t gw_memo_apply(const gw_memo_entry_t *e, const gw_point_t *p, gw_point_t *out, gw_tag_t *tags,
                       gw_field_t *fields)
{
    if (e->kind == KIND_DROP)
        return 0;
    for (uint32_t i = 0; i < e->ntags; i++)
        tags[i] = e->tsrc[i] >= 0 ? p->tags[e->tsrc[i]] : e->ctags[-1 - e->tsrc[i]];
    if (e->kept) { /* the input's fields in order, then the constants in order */
        uint32_t i = 0;
        for (; i < p->nfields; i++)
            fields[i] = p->fields[i];
        for (uint32_t j = 0; i < e->nfields; i++, j++)
            fields[i] = e->cfields[j];
    } else {
        for (uint32_t i = 0; i < e->nfields; i++)
            fields[i] = e->fsrc[i] >= 0 ? p->fields[e->fsrc[i]] : e->cfields[-1 - e->fsrc[i]];
    }
    *out = *p;
    out->tags = tags;
    out->ntags = e->ntags;
    out->fields = fields;
    out->nfields = e->nfields;
    /* As a script's write-back: series, time and the parsed fields as the
     * parser read them, tags changed and fields added (point.h). */
    out->lp_clean = e->kept && p->lp_clean ? p->lp_clean | GW_LP_CLEAN_EXTRA : 0;
    if (e->pre && out->lp_clean) {
        out->lp_clean |= GW_LP_CLEAN_PRE;
        out->lp_pre = e->pre;
    }
    return 1;
}

static int same_value(const gw_field_t *a, const gw_field_t *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case GW_FIELD_FLOAT:
        return memcmp(&a->v.f, &b->v.f, sizeof(a->v.f)) == 0;
    case GW_FIELD_INT:
        return a->v.i == b->v.i;
    case GW_FIELD_UINT:
        return a->v.u == b->v.u;
    case GW_FIELD_BOOL:
        return !a->v.b == !b->v.b;
    case GW_FIELD_STRING:
        return gw_str_eq(a->v.s, b->v.s);
    }
    return 0;
}

/* The key of output tag src (sort_tags' context: the input's tags, the
 * entry's constants). */
typedef struct {
    const gw_tag_t *in, *consts;
} tag_ctx_t;

static gw_str_t tag_key(const tag_ctx_t *x, int32_t src)
{
    return src >= 0 ? x->in[src].key : x->consts[-1 - src].key;
}

static int cmp_tag_src(const void *a, const void *b, void *ctx)
{
    return gw_str_cmp(tag_key(ctx, *(const int32_t *)a), tag_key(ctx, *(const int32_t *)b));
}

/* What the run did to the point, worked out before the entry is
 * allocated: each output entry's source, how many are constants and
 * their bytes. Returns the kind. */
static int classify(const gw_point_t *in, const gw_point_t *o, int32_t *tsrc, int32_t *fsrc, uint32_t *nct,
                    uint32_t *ncf, size_t *bytes)
{
    for (uint32_t i = 0; i < o->ntags; i++) {
        int j = gw_point_find_tag(in, o->tags[i].key);
        if (j >= 0 && gw_str_eq(in->tags[j].val, o->tags[i].val)) {
            tsrc[i] = j;
        } else {
            tsrc[i] = -1 - (int32_t)(*nct)++;
            *bytes += o->tags[i].key.n + o->tags[i].val.n;
        }
    }
    for (uint32_t i = 0; i < o->nfields; i++) {
        int j = gw_point_find_field(in, o->fields[i].key);
        if (j >= 0 && !same_value(&in->fields[j], &o->fields[i]))
            return KIND_UNCACHEABLE; /* a field value changed: depends on the value */
        if (j >= 0) {
            fsrc[i] = j;
        } else {
            fsrc[i] = -1 - (int32_t)(*ncf)++;
            *bytes += o->fields[i].key.n + (o->fields[i].type == GW_FIELD_STRING ? o->fields[i].v.s.n : 0);
        }
    }
    return KIND_POINT;
}

static char *copy_str(char **w, gw_str_t s)
{
    char *p = memcpy(*w, s.p, s.n);
    *w += s.n;
    return p;
}

/* The entry for key m->key (hash h) from what the chain made of in:
 * outs[0..n). NULL on ENOMEM. */
static gw_memo_entry_t *effect_of(const gw_memo_t *m, uint64_t h, const gw_point_t *in, const gw_point_t *outs,
                                  uint32_t n)
{
    const gw_point_t *o = outs;
    size_t size = sizeof(gw_memo_entry_t) + m->keylen, bytes = 0;
    uint32_t nct = 0, ncf = 0;
    int32_t *src = NULL;
    int kind = n == 0 ? KIND_DROP : KIND_POINT;
    gw_memo_entry_t *e = NULL;
    char *w;

    if (n > 1 || (n == 1 && (!gw_str_eq(o->series, in->series) || o->time_ns != in->time_ns)))
        kind = KIND_UNCACHEABLE;
    if (kind == KIND_POINT) {
        if (!(src = malloc(((size_t)o->ntags + o->nfields + 1) * sizeof(*src))))
            return NULL;
        kind = classify(in, o, src, src + o->ntags, &nct, &ncf, &bytes);
    }
    if (kind == KIND_POINT)
        size += ncf * sizeof(gw_field_t) + nct * sizeof(gw_tag_t) + ((size_t)o->ntags + o->nfields) * 4 + bytes;
    if (!(e = calloc(1, size)))
        goto done;
    e->hash = h;
    e->kind = (uint8_t)kind;
    e->keylen = (uint32_t)m->keylen;
    w = (char *)(e + 1);
    if (kind == KIND_POINT) {
        e->cfields = (gw_field_t *)w;
        e->ctags = (gw_tag_t *)(e->cfields + ncf);
        e->tsrc = (int32_t *)(e->ctags + nct);
        e->fsrc = e->tsrc + o->ntags;
        w = (char *)(e->fsrc + o->nfields);
        e->ntags = o->ntags;
        e->nfields = o->nfields;
        e->nctags = nct;
        e->ncfields = ncf;
        memcpy(e->tsrc, src, ((size_t)o->ntags + o->nfields) * 4);
    }
    e->key = memcpy(w, m->key, m->keylen);
    w += m->keylen;
    if (kind != KIND_POINT)
        goto done;
    e->kept = o->nfields >= in->nfields;
    for (uint32_t i = 0; i < o->ntags; i++) {
        gw_tag_t *t;
        if (e->tsrc[i] >= 0)
            continue;
        t = &e->ctags[-1 - e->tsrc[i]];
        t->key = (gw_str_t){copy_str(&w, o->tags[i].key), o->tags[i].key.n};
        t->val = (gw_str_t){copy_str(&w, o->tags[i].val), o->tags[i].val.n};
    }
    for (uint32_t i = 0; i < o->nfields; i++) {
        gw_field_t *f;
        if (i < in->nfields && e->fsrc[i] != (int32_t)i)
            e->kept = 0;
        if (e->fsrc[i] >= 0)
            continue;
        f = &e->cfields[-1 - e->fsrc[i]];
        *f = o->fields[i];
        f->key.p = copy_str(&w, o->fields[i].key);
        if (f->type == GW_FIELD_STRING)
            f->v.s.p = copy_str(&w, o->fields[i].v.s);
    }
    /* In the encoder's order (it sorts a point's tags by key in place):
     * its sort then finds them sorted. Keys are unique. */
    if (e->ntags > 1) {
        tag_ctx_t x = {in->tags, e->ctags};
        qsort_r(e->tsrc, e->ntags, sizeof(*e->tsrc), cmp_tag_src, &x);
    }
done:
    free(src);
    return e;
}

/* Put e in the table, evicting an entry when full (the clock). */
static void insert(gw_memo_t *m, gw_memo_entry_t *e)
{
    gw_memo_entry_t **b;

    if (m->n == m->cap) {
        gw_memo_entry_t *v;
        while (m->ring[m->hand]->ref) {
            m->ring[m->hand]->ref = 0;
            m->hand = m->hand + 1 == m->cap ? 0 : m->hand + 1;
        }
        v = m->ring[m->hand];
        for (b = &m->buckets[v->hash & m->mask]; *b != v; b = &(*b)->next)
            ;
        *b = v->next;
        v->next = m->dead;
        m->dead = v;
        m->ring[m->hand] = e;
        m->hand = m->hand + 1 == m->cap ? 0 : m->hand + 1;
        m->st.evictions++;
    } else {
        m->ring[m->n++] = e;
    }
    b = &m->buckets[e->hash & m->mask];
    e->next = *b;
    *b = e;
}

static int make_pre(gw_memo_t *m, gw_memo_entry_t *e, const gw_point_t *in)
{
    gw_tag_t *tags;
    gw_field_t *fields;
    gw_point_t o;
    gw_lp_pre_t pre;
    int rc;

    if (e->pre || e->kind != KIND_POINT || !e->kept || !raw_span(in).p)
        return 0;
    if (!(tags = malloc((size_t)e->ntags * sizeof(*tags) + (size_t)e->nfields * sizeof(*fields) + 1)))
        return -ENOMEM;
    fields = (gw_field_t *)(tags + e->ntags);
    gw_memo_apply(e, in, &o, tags, fields);
    rc = gw_lp_encode_pre(&m->line, &o, &pre);
    free(tags);
    if (rc)
        return rc < 0 ? rc : 0;
    if (!(e->pre = malloc(sizeof(*e->pre) + pre.head.n + pre.fields.n)))
        return -ENOMEM;
    {
        char *w = (char *)(e->pre + 1);
        e->pre->head = (gw_str_t){copy_str(&w, pre.head), pre.head.n};
        e->pre->fields = (gw_str_t){copy_str(&w, pre.fields), pre.fields.n};
    }
    return 0;
}

int gw_memo_learn(gw_memo_t *m, uint16_t cid, const gw_point_t *in, const gw_point_t *outs, uint32_t n)
{
    uint64_t h;
    gw_memo_entry_t *e;

    if (build_key(m, cid, in))
        return -ENOMEM;
    h = key_hash(m, cid, in);
    if (find(m, h))
        return 0;
    if (!(e = effect_of(m, h, in, outs, n)))
        return -ENOMEM;
    insert(m, e);
    return 0;
}

/* Do entries a and b (of one key) say the same? Their constants are
 * numbered in the order of the outputs, so equal effects have equal
 * arrays. */
static int same_effect(const gw_memo_entry_t *a, const gw_memo_entry_t *b)
{
    if (a->kind != b->kind || a->ntags != b->ntags || a->nfields != b->nfields || a->nctags != b->nctags ||
        a->ncfields != b->ncfields)
        return 0;
    if (a->kind != KIND_POINT)
        return 1;
    if (memcmp(a->tsrc, b->tsrc, ((size_t)a->ntags + a->nfields) * 4))
        return 0;
    for (uint32_t i = 0; i < a->nctags; i++)
        if (!gw_str_eq(a->ctags[i].key, b->ctags[i].key) || !gw_str_eq(a->ctags[i].val, b->ctags[i].val))
            return 0;
    for (uint32_t i = 0; i < a->ncfields; i++)
        if (!gw_str_eq(a->cfields[i].key, b->cfields[i].key) || !same_value(&a->cfields[i], &b->cfields[i]))
            return 0;
    return 1;
}

int gw_memo_verify(gw_memo_t *m, uint16_t cid, const gw_point_t *in, const gw_point_t *outs, uint32_t n)
{
    uint64_t h;
    gw_memo_entry_t *e, *now;
    int same;

    if (build_key(m, cid, in))
        return -ENOMEM;
    h = key_hash(m, cid, in);
    if (!(e = find(m, h)))
        return 1; /* evicted meanwhile */
    if (!(now = effect_of(m, h, in, outs, n)))
        return -ENOMEM;
    same = same_effect(e, now);
    entry_free(now);
    if (same)
        return 1;
    m->st.mismatches++;
    e->kind = KIND_UNCACHEABLE; /* its arrays stay (unused) until it is freed */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Counters */

void gw_memo_flush(gw_memo_t *m)
{
    const uint64_t *v = &m->st.hits;

    for (size_t i = 0; i < NSTATS; i++)
        if (v[i])
            atomic_fetch_add_explicit(&totals[i], v[i], memory_order_relaxed);
    memset(&m->st, 0, sizeof(m->st));
}

void gw_memo_stats(gw_memo_stats_t *out)
{
    uint64_t *v = &out->hits;

    for (size_t i = 0; i < NSTATS; i++)
        v[i] = atomic_load_explicit(&totals[i], memory_order_relaxed);
}
