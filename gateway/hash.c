/* hash.c — the random basis of gw_hash, see hash.h. */
#include "hash.h"

#include <sys/random.h>
#include <time.h>

uint64_t gw_hash_basis = 0xcbf29ce484222325u; /* FNV's own, until the constructor runs */

/* Drawn before main (and when the library is loaded), before any thread
 * exists: every later reader sees it without a lock. */
__attribute__((constructor)) static void draw_basis(void)
{
    uint64_t k;

    if (getrandom(&k, sizeof(k), GRND_NONBLOCK) != sizeof(k))
        k = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u ^ (uint64_t)(uintptr_t)&k;
    gw_hash_basis ^= k;
}
