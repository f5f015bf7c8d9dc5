/* spool_record.c — the spool's files, byte by byte, see spool_record.h. */
#include "spool_record.h"

#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>
#include <zlib.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "spool records are written in host order, which must be little-endian"
#endif

#define SEG_MAGIC "luagwsp2"    /* then u64 seq, the segment's key: 32 bytes */
#define SEG_MAGIC_V1 "luagwsp1" /* an earlier luagw's: u64 seq, 16 bytes; records without hcrc */
#define SEG_HDR_V1 16u
#define REC_MAGIC 0x4c52f7a5u   /* bytes a5 f7 52 4c: never valid UTF-8 */
#define REC_HDR_V1 16u
#define ACK_MAGIC "luagwack"    /* then u64 seq, u64 off, u32 skip, u32 crc */

void spool_seg_name(char *out, size_t outlen, uint64_t seq)
{
    snprintf(out, outlen, "%016llx.seg", (unsigned long long)seq);
}

int spool_pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

int spool_writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t k = writev(fd, iov, cnt);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        while (cnt > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

uint32_t spool_rec_hdr(const spool_fmt_t *f)
{
    return f->v1 ? REC_HDR_V1 : SPOOL_REC_HDR;
}

uint32_t spool_seg_hdr(const spool_fmt_t *f)
{
    return f->v1 ? SEG_HDR_V1 : SPOOL_SEG_HDR;
}

int spool_new_key(unsigned char *key)
{
    size_t got = 0;

    while (got < SPOOL_KEY_LEN) {
        ssize_t k = getrandom(key + got, SPOOL_KEY_LEN - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

void spool_seg_header(unsigned char *hdr, uint64_t seq, const spool_fmt_t *f)
{
    memcpy(hdr, SEG_MAGIC, 8);
    memcpy(hdr + 8, &seq, 8);
    memcpy(hdr + 16, f->key, SPOOL_KEY_LEN);
}

int spool_seg_header_matches(const unsigned char *hdr, uint64_t seq, const spool_fmt_t *f)
{
    return memcmp(hdr, f->v1 ? SEG_MAGIC_V1 : SEG_MAGIC, 8) == 0 && spool_get64(hdr + 8) == seq &&
           (f->v1 || memcmp(hdr + 16, f->key, SPOOL_KEY_LEN) == 0);
}

void spool_read_format(int fd, uint64_t size, spool_fmt_t *f)
{
    unsigned char hdr[SPOOL_SEG_HDR] = {0};

    if (spool_pread_all(fd, hdr, SEG_HDR_V1, 0) == 0 && memcmp(hdr, SEG_MAGIC_V1, 8) == 0) {
        f->v1 = 1;
        return;
    }
    if (size >= SPOOL_SEG_HDR && spool_pread_all(fd, hdr, SPOOL_SEG_HDR, 0) == 0)
        memcpy(f->key, hdr + 16, SPOOL_KEY_LEN);
}

/* The header check: crc32 over the segment's key and the header's first 16
 * bytes. Clients choose the bytes of string values, so they can write a
 * record that passes every other check into a value; not knowing the key,
 * they cannot make one that passes this, which is what lets a scan for the
 * next record after damage trust what it finds, and turn down a fake header
 * without reading the body it claims (no quadratic rescans). */
static uint32_t header_crc(const spool_fmt_t *f, const unsigned char *h)
{
    uLong c = crc32(0L, f->key, SPOOL_KEY_LEN);
    return (uint32_t)crc32(c, h, 16);
}

void spool_rec_header(unsigned char *h, const char *lines, uint32_t len, const uint32_t *ends, uint32_t npoints)
{
    uint32_t v = REC_MAGIC;
    uLong crc;

    memcpy(h, &v, 4);
    memcpy(h + 4, &len, 4);
    memcpy(h + 8, &npoints, 4);
    crc = crc32(0L, h + 4, 8);
    crc = crc32(crc, (const Bytef *)lines, (uInt)len);
    crc = crc32(crc, (const Bytef *)ends, (uInt)(4 * (size_t)npoints));
    v = (uint32_t)crc;
    memcpy(h + 12, &v, 4);
}

void spool_rec_seal(unsigned char *h, const spool_fmt_t *f)
{
    uint32_t v = header_crc(f, h);

    memcpy(h + 16, &v, 4);
}

/* Does the record header h (spool_rec_hdr(f) bytes) look like one this spool
 * wrote into a file of size bytes at off? */
static int header_ok(const spool_fmt_t *f, const unsigned char *h, uint64_t off, uint64_t size)
{
    uint32_t rlen = spool_get32(h + 4), rn = spool_get32(h + 8);
    uint64_t body = (uint64_t)rlen + 4 * (uint64_t)rn;

    if (spool_get32(h) != REC_MAGIC || rn == 0 || rlen < rn || body > size - off - spool_rec_hdr(f))
        return 0;
    return f->v1 || spool_get32(h + 16) == header_crc(f, h);
}

int spool_load_record(int fd, const spool_fmt_t *f, uint64_t off, uint64_t size, gw_buf_t *rec, uint32_t *n,
                       uint32_t *len)
{
    unsigned char h[SPOOL_REC_HDR];
    uint32_t rn, rlen, prev = 0, hl = spool_rec_hdr(f);
    uint64_t body;
    uLong crc;

    if (off + hl > size || spool_pread_all(fd, h, hl, off) || !header_ok(f, h, off, size))
        return 1;
    rlen = spool_get32(h + 4);
    rn = spool_get32(h + 8);
    body = (uint64_t)rlen + 4 * (uint64_t)rn;
    rec->len = 0;
    if (gw_buf_reserve(rec, body))
        return -ENOMEM;
    if (spool_pread_all(fd, rec->data, body, off + hl))
        return 1;
    crc = crc32(0L, h + 4, 8);
    crc = crc32(crc, (const Bytef *)rec->data, (uInt)body);
    if ((uint32_t)crc != spool_get32(h + 12))
        return 1;
    /* A good CRC over bad ends would be our own bug; check anyway, since a
     * reader must never hand on anything but whole lines. */
    for (uint32_t i = 0; i < rn; i++) {
        uint32_t e = spool_get32(rec->data + rlen + 4 * (size_t)i);
        if (e <= prev || e > rlen || rec->data[e - 1] != '\n')
            return 1;
        prev = e;
    }
    if (prev != rlen)
        return 1;
    rec->len = body;
    *n = rn;
    *len = rlen;
    return 0;
}

/* The offset of the first good record at or after from, or size when there
 * is none (an I/O error or ENOMEM gives up the rest of the segment too).
 * Each magic found costs a header check from the buffer already read; only
 * a header that passes it (with a key: one this spool wrote) has its body
 * read. So the scan is linear in the bytes after from. */
uint64_t spool_resync(int fd, const spool_fmt_t *f, uint64_t from, uint64_t size, gw_buf_t *scratch)
{
    static const unsigned char magic[4] = {0xa5, 0xf7, 0x52, 0x4c};
    unsigned char buf[65536];
    uint64_t pos = from;
    uint32_t hl = spool_rec_hdr(f);

    while (pos + hl <= size) {
        size_t want = size - pos < sizeof(buf) ? (size_t)(size - pos) : sizeof(buf);
        unsigned char *p = buf, *hit;
        size_t left;
        if (spool_pread_all(fd, buf, want, pos))
            return size;
        left = want;
        while ((hit = memmem(p, left, magic, sizeof(magic))) != NULL) {
            uint32_t n, len;
            uint64_t at = pos + (uint64_t)(hit - buf);
            int rc = 1;
            /* A header straddling the chunk's end is checked by load_record. */
            if ((size_t)(hit - buf) + hl > want || header_ok(f, hit, at, size))
                rc = spool_load_record(fd, f, at, size, scratch, &n, &len);
            if (rc == 0)
                return at;
            if (rc < 0)
                return size;
            left -= (size_t)(hit + 1 - p);
            p = hit + 1;
        }
        if (want < sizeof(buf))
            break;
        pos += want - (hl - 1); /* a header may straddle the chunks */
    }
    return size;
}

void spool_ack_encode(unsigned char *a, const gw_spool_pos_t *pos)
{
    uint32_t c;

    memcpy(a, ACK_MAGIC, 8);
    memcpy(a + 8, &pos->seq, 8);
    memcpy(a + 16, &pos->off, 8);
    memcpy(a + 24, &pos->skip, 4);
    c = (uint32_t)crc32(0L, a, 28);
    memcpy(a + 28, &c, 4);
}

int spool_ack_decode(const unsigned char *a, gw_spool_pos_t *pos)
{
    if (memcmp(a, ACK_MAGIC, 8) || (uint32_t)crc32(0L, a, 28) != spool_get32(a + 28))
        return 0;
    pos->seq = spool_get64(a + 8);
    pos->off = spool_get64(a + 16);
    pos->skip = spool_get32(a + 24);
    return 1;
}
