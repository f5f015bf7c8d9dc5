/* point.h — the point model shared by parsers, scripts and the encoder.
 *
 * A point's strings are unescaped slices that borrow either the request body
 * or the worker's arena; a point never owns memory. Time is int64 nanoseconds
 * since the Unix epoch, always set (parsers use the time of receipt when the
 * input has none). Field values keep their Influx type. */
#ifndef GW_POINT_H
#define GW_POINT_H

#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "jsonw.h"

typedef enum {
    GW_FIELD_FLOAT = 0,
    GW_FIELD_INT,
    GW_FIELD_UINT,
    GW_FIELD_STRING,
    GW_FIELD_BOOL,
} gw_field_type_t;

typedef struct {
    gw_str_t key; /* borrowed */
    gw_str_t val; /* borrowed */
} gw_tag_t;

typedef struct {
    gw_str_t key; /* borrowed */
    int type;     /* gw_field_type_t */
    union {
        double f;
        int64_t i;
        uint64_t u;
        int b;      /* 0 or 1 */
        gw_str_t s; /* borrowed, unescaped */
    } v;
} gw_field_t;

typedef struct {
    gw_str_t series;    /* borrowed: the measurement */
    int64_t time_ns;
    gw_tag_t *tags;     /* borrowed (arena) */
    gw_field_t *fields; /* borrowed (arena) */
    uint32_t ntags;
    uint32_t nfields;
    uint32_t src;       /* 1-based line (line protocol) or 0-based index (JSON) */
    uint32_t lp_clean;  /* GW_LP_CLEAN*: what the line-protocol parser vouches for */
    gw_str_t lp_tail;   /* borrowed (the body): see GW_LP_CLEAN */
} gw_point_t;

/* lp_clean: set only by the line-protocol parser, for the encoder. Whoever
 * changes a point (scripts, series defaults) sets it to 0, which vouches for
 * nothing and is the default of every other producer (gw_points_push zeroes).
 * GW_LP_CLEAN: every name is a slice of the point's line in the body that
 * needs no escape and passes the encoder's checks (a tag's key, '=' and
 * value are contiguous), and lp_tail, after them on that line, is the
 * field set exactly as gw_lp_encode writes it: series.p up to the end of
 * lp_tail spans every name and value of the point.
 * GW_LP_CLEAN_TIME: lp_tail goes on with ' ' and time_ns as it writes it.
 * GW_LP_CLEAN_EXTRA: set by a script's write-back or a series declaration
 * that kept the flag: series, time and the parsed fields are as the parser
 * read them, but tags may have been changed, removed or added and fields
 * added (never a duplicate key); the encoder tells them apart by whether
 * they lie in the line (lp_encode.c, encode_clean). */
#define GW_LP_CLEAN 0x1
#define GW_LP_CLEAN_TIME 0x2
#define GW_LP_CLEAN_EXTRA 0x4

/* A growable array of points, owned by a worker and reused across requests
 * (amortised: no allocation per point in the steady state). */
typedef struct {
    gw_point_t *v; /* owned */
    uint32_t n;
    uint32_t cap;
} gw_points_t;

/* Append a zeroed point; NULL on ENOMEM. */
gw_point_t *gw_points_push(gw_points_t *pts);
void gw_points_free(gw_points_t *pts);

typedef enum {
    GW_WHERE_LINE = 0, /* err_where is a 1-based line of a line-protocol body */
    GW_WHERE_INDEX,    /* err_where is a 0-based index into a JSON array */
    GW_WHERE_BODY,     /* the body as a whole (bad JSON, bad encoding...) */
} gw_where_t;

/* What happened to a request's points. The error of the earliest line or
 * index is kept verbatim; the others are only counted. */
typedef struct {
    uint32_t accepted;
    uint32_t rejected;
    int has_error;
    int err_kind;       /* gw_where_t: what err_where counts */
    uint32_t err_where;
    char err_msg[256];
} gw_result_t;

/* Would a rejection at where replace the kept message? Lets callers skip
 * formatting a message nobody will read. */
static inline int gw_result_wants_msg(const gw_result_t *r, uint32_t where)
{
    return !r->has_error || (r->err_kind != GW_WHERE_BODY && where < r->err_where);
}

/* Count one rejected point and keep its message if it is the earliest.
 * fmt is printf-style. */
void gw_result_reject(gw_result_t *r, int kind, uint32_t where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The members of the JSON answer to a body whose points ended as res says
 * (the endpoints' 204 or 400, the debug transform's verdict), into the
 * object open in j: when a point was rejected, "error" (the earliest one:
 * "[partial write: ]line N: ..." or "index N: ...", made safe to echo,
 * utf8.h) and "line" or "index"; then "accepted" and "rejected". */
void gw_result_json(gw_jsonw_t *j, const gw_result_t *res);

/* Helpers for parsers: look up a key among a point's tags or fields. */
static inline int gw_point_find_tag(const gw_point_t *p, gw_str_t key) /* index or -1 */
{
    for (uint32_t i = 0; i < p->ntags; i++)
        if (gw_str_eq(p->tags[i].key, key))
            return (int)i;
    return -1;
}

static inline int gw_point_find_field(const gw_point_t *p, gw_str_t key) /* index or -1 */
{
    for (uint32_t i = 0; i < p->nfields; i++)
        if (gw_str_eq(p->fields[i].key, key))
            return (int)i;
    return -1;
}

/* Two items of one key may stand for one value (gw_keep_last)? */
typedef int (*gw_compatible_fn)(const void *earlier, const void *later);

/* Keep, of the items that share a key, only the last, as InfluxDB and JSON
 * keep a repeated key's last value: items are n structs of size bytes whose
 * first member is the key (gw_tag_t, gw_field_t); the kept ones move up in
 * their order. Returns how many are kept; -ENOMEM (scratch comes from a);
 * or -1 with *bad the index of an item that ok (when given) finds
 * incompatible with an earlier one of its key, items unchanged. */
long gw_keep_last(void *items, uint32_t n, size_t size, gw_arena_t *a, gw_compatible_fn ok,
                  uint32_t *bad);

#endif
