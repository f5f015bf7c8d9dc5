/* spool_record.h — the spool's files, byte by byte (internal to spool*.c,
 * hidden from libluagw.so; spool.h is the API).
 *
 * A segment file is a 32-byte header — the magic "luagwsp2", the segment's
 * u64 number, a random 16-byte key — then records:
 *
 *   u32 magic | u32 len | u32 npoints | u32 crc | u32 hcrc | lines | ends
 *
 * crc is zlib's crc32 over len, npoints, the lines and the ends; hcrc, the
 * header check, is crc32 over the key and the record header's first 16
 * bytes (spool_record.c says why). An earlier luagw's segments ("luagwsp1",
 * a 16-byte header without key) hold records without hcrc; they are still
 * read. The ack file is "luagwack" | u64 seq | u64 off | u32 skip | u32 crc.
 * Everything is little-endian (host order, checked at build time). */
#ifndef GW_SPOOL_RECORD_H
#define GW_SPOOL_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "buf.h"
#include "spool.h"

#define SPOOL_SEG_HDR 32u  /* a segment header */
#define SPOOL_REC_HDR 20u  /* a record header */
#define SPOOL_KEY_LEN 16u
#define SPOOL_ACK_SIZE 32u /* the ack file */

/* How a segment's records are checked. */
typedef struct {
    int v1;                           /* an earlier luagw's: no header check */
    unsigned char key[SPOOL_KEY_LEN]; /* random, from the segment header */
} spool_fmt_t;

static inline uint32_t spool_get32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t spool_get64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The file name of segment seq (out: 32 bytes). */
void spool_seg_name(char *out, size_t outlen, uint64_t seq);

/* pread(2) n bytes at off, or writev(2) all of iov, resuming after short
 * transfers and EINTR. 0, or -1 with errno set (a short file for pread). */
int spool_pread_all(int fd, void *buf, size_t n, uint64_t off);
int spool_writev_all(int fd, struct iovec *iov, int cnt);

/* Sizes of a record header and a segment header in format f. */
uint32_t spool_rec_hdr(const spool_fmt_t *f);
uint32_t spool_seg_hdr(const spool_fmt_t *f);

/* A new segment: a random key for f (0, or -1 with errno set), and its
 * header (SPOOL_SEG_HDR bytes) into hdr. */
int spool_new_key(unsigned char *key);
void spool_seg_header(unsigned char *hdr, uint64_t seq, const spool_fmt_t *f);

/* Does the segment header hdr (spool_seg_hdr(f) bytes) belong to segment
 * seq? */
int spool_seg_header_matches(const unsigned char *hdr, uint64_t seq, const spool_fmt_t *f);

/* The format of an earlier run's segment (size bytes) from its header into
 * f. A damaged magic is taken for the current format: its records then fail
 * their checks unless the key survived. */
void spool_read_format(int fd, uint64_t size, spool_fmt_t *f);

/* The record header (SPOOL_REC_HDR bytes) of npoints lines (len bytes) and
 * their ends into h, all but the header check, which needs the segment:
 * spool_rec_seal adds it. */
void spool_rec_header(unsigned char *h, const char *lines, uint32_t len, const uint32_t *ends, uint32_t npoints);
void spool_rec_seal(unsigned char *h, const spool_fmt_t *f);

/* Check the record at off of a file of size bytes and load its lines and
 * ends into rec. Returns 0 (with *n points, *len bytes of lines), or 1 when
 * the bytes there are not a good record (short, torn, damaged, or an I/O
 * error), or -ENOMEM. */
int spool_load_record(int fd, const spool_fmt_t *f, uint64_t off, uint64_t size, gw_buf_t *rec, uint32_t *n,
                      uint32_t *len);

/* The offset of the first good record at or after from, or size when there
 * is none (an I/O error or ENOMEM gives up the rest of the segment too);
 * linear in the bytes after from. scratch holds what it reads. */
uint64_t spool_resync(int fd, const spool_fmt_t *f, uint64_t from, uint64_t size, gw_buf_t *scratch);

/* The ack file's bytes (SPOOL_ACK_SIZE) of pos, and back: 1 with *pos set,
 * or 0 when a is no ack (never written, or damaged). */
void spool_ack_encode(unsigned char *a, const gw_spool_pos_t *pos);
int spool_ack_decode(const unsigned char *a, gw_spool_pos_t *pos);

#endif
