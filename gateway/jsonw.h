/* jsonw.h — JSON text written straight into a buffer.
 *
 * Every JSON document luagw writes (answers, /health, the spool's part of
 * it, dead-letter counts, debug traces) is written with this: a small state
 * on the stack, calls in document order, no tree in between. The writer puts
 * the commas and colons, and checks the nesting: a value in an object without
 * its key, a key in an array, an end without a begin or a document left open
 * is a usage error.
 *
 * Errors stick: the first one (-ENOMEM from the buffer, -EINVAL from usage)
 * is kept, every later call does nothing, and gw_jsonw_finish() reports it
 * once, so callers write the whole document without checking each call.
 *
 * Strings are written as UTF-8 JSON whatever bytes they hold, with utf8.c's
 * rules: valid characters are kept as they are; `"`, `\` and control
 * characters are escaped the JSON way (\n, \u0001), so they read back
 * exactly; every byte of an invalid sequence becomes the four characters
 * \xHH (the JSON text `\\xHH`), as gw_utf8_echo writes it.
 *
 * Numbers: integers exactly, doubles in their short round-trip form
 * (numconv.h); NaN and infinities, which JSON cannot hold, as null. */
#ifndef GW_JSONW_H
#define GW_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Deepest nesting of objects and arrays. */
#define GW_JSONW_MAX_DEPTH 63

typedef struct {
    gw_buf_t *out;   /* borrowed: the text is appended here */
    uint64_t more;   /* bit d: the container at depth d holds a value already */
    uint64_t object; /* bit d: the container at depth d is an object */
    unsigned depth;  /* open containers; 0 at the top */
    int key_open;    /* a key was written, its value comes next */
    int err;         /* the first error, or 0 */
} gw_jsonw_t;

/* Start a document appended to out (whatever out holds already stays). */
void gw_jsonw_init(gw_jsonw_t *w, gw_buf_t *out);

/* Open an object or an array (as a value: after a key, in an array, or at
 * the top); gw_jsonw_end closes the innermost one. */
void gw_jsonw_begin_object(gw_jsonw_t *w);
void gw_jsonw_begin_array(gw_jsonw_t *w);
void gw_jsonw_end(gw_jsonw_t *w);

/* A key in the current object; its value is the next call. The key is
 * escaped as a string is. */
void gw_jsonw_key(gw_jsonw_t *w, const char *key);
void gw_jsonw_key_n(gw_jsonw_t *w, const char *key, size_t n);

/* Values. gw_jsonw_string writes null for NULL. */
void gw_jsonw_string(gw_jsonw_t *w, const char *s);
void gw_jsonw_string_n(gw_jsonw_t *w, const char *s, size_t n);
void gw_jsonw_int(gw_jsonw_t *w, int64_t v);
void gw_jsonw_uint(gw_jsonw_t *w, uint64_t v);
void gw_jsonw_double(gw_jsonw_t *w, double v);
void gw_jsonw_bool(gw_jsonw_t *w, int v);
void gw_jsonw_null(gw_jsonw_t *w);

/* The n bytes of s as a string of at most max characters' worth of text
 * (max >= 3), measured as a reader decodes it (an invalid byte counts four,
 * as \xHH): whole when it fits, else as many whole characters as fit with
 * "..." after them. */
void gw_jsonw_string_cut(gw_jsonw_t *w, const char *s, size_t n, size_t max);

/* A value already written as JSON text (trusted to be one), copied as is. */
void gw_jsonw_raw(gw_jsonw_t *w, const char *json, size_t n);

/* A key and its value in one call. */
void gw_jsonw_member_string(gw_jsonw_t *w, const char *key, const char *s);
void gw_jsonw_member_int(gw_jsonw_t *w, const char *key, int64_t v);
void gw_jsonw_member_uint(gw_jsonw_t *w, const char *key, uint64_t v);
void gw_jsonw_member_double(gw_jsonw_t *w, const char *key, double v);
void gw_jsonw_member_bool(gw_jsonw_t *w, const char *key, int v);

/* End the document: 0 when it is one whole value, else the first error
 * (-ENOMEM; -EINVAL for misuse or a document left open). On success the text
 * is followed by a NUL byte not counted in out->len; on error out holds
 * unspecified bytes past where the document started (the caller frees or
 * truncates it). */
int gw_jsonw_finish(gw_jsonw_t *w);

#endif
