/* remap: CRC32C (Castagnoli), in software.
 *
 * Reflected polynomial 0x82F63B78, initial value ~0, final xor ~0: the CRC
 * of iSCSI, ext4 and btrfs.  remap_crc32c (0, "123456789", 9) = 0xE3069283.
 * Chaining: remap_crc32c (remap_crc32c (0, a), b) = remap_crc32c (0, a || b).
 *
 * Slicing-by-8: eight 256-entry tables let the loop consume eight bytes per
 * step.  The tables are built once, on first use, under pthread_once, so the
 * function is safe to call from any thread.  Bytes are combined explicitly,
 * so the code does not depend on the host's byte order.
 *
 * It deliberately does not use the SSE4.2 / ARMv8 CRC instructions: metadata
 * blocks are small and rare, and one portable path is easier to trust.
 */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/meta.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void
build_tables (void)
{
  unsigned i, j, k;

  for (i = 0; i < 256; i++) {
    uint32_t c = i;

    for (k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    table[0][i] = c;
  }
  /* table[j][i] is the CRC of byte i followed by j zero bytes. */
  for (i = 0; i < 256; i++)
    for (j = 1; j < 8; j++)
      table[j][i] = (table[j - 1][i] >> 8) ^ table[0][table[j - 1][i] & 0xff];
}

uint32_t
remap_crc32c (uint32_t crc, const void *buf, size_t len)
{
  const uint8_t *p = buf;

  pthread_once (&table_once, build_tables);

  crc = ~crc;
  while (len >= 8) {
    uint32_t lo = crc ^
      ((uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
       (uint32_t) p[3] << 24);
    uint32_t hi = (uint32_t) p[4] | (uint32_t) p[5] << 8 |
      (uint32_t) p[6] << 16 | (uint32_t) p[7] << 24;

    crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
      table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^ table[3][hi & 0xff] ^
      table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^
      table[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len-- > 0)
    crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
  return ~crc;
}
