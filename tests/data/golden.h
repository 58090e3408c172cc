/* remap: what the golden images of tests/data/ were made from.
 *
 * Shared by the generator (mkgolden.c) and the test that reads the images
 * back (tests/unit/test_golden.c).  Changing anything here changes the
 * images: regenerate them (tests/data/README.md) and, if the bytes on disk
 * change meaning, bump the format version or add a feature bit first.
 */
#ifndef REMAP_TESTS_DATA_GOLDEN_H
#define REMAP_TESTS_DATA_GOLDEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every golden spare carries this uuid and time (2023-11-14 22:13:20 UTC). */
static const uint8_t golden_uuid[16] = {
  0x52, 0x45, 0x4d, 0x41, 0x50, 0x2d, 0x47, 0x4f, /* "REMAP-GO" */
  0x4c, 0x44, 0x45, 0x4e, 0x2d, 0x76, 0x31, 0x21, /* "LDEN-v1!" */
};
#define GOLDEN_UUID_STR "52454d41-502d-474f-4c44-454e2d763121"
#define GOLDEN_FORMAT_TIME UINT64_C (1700000000)

/* golden-v1-4k.spare(.gz): linear placement, 4 copies. */
#define G4K_NAME "golden-v1-4k.spare.gz"
#define G4K_SPARE_SIZE (UINT64_C (1) << 20)
#define G4K_ORIGIN_SIZE (UINT64_C (4) << 20)
#define G4K_UNIT 4096u
#define G4K_LABEL "/dev/golden-4k"
#define G4K_BAD_SLOT 252u /* a free spare unit in table block 1 */

/* golden-v1-512.spare: minimal placement, 2 copies. */
#define G512_NAME "golden-v1-512.spare"
#define G512_SPARE_SIZE (UINT64_C (64) << 10)
#define G512_ORIGIN_SIZE (UINT64_C (1) << 20)
#define G512_UNIT 512u
#define G512_LABEL "/dev/golden-512"
#define G512_BAD_SLOT 100u /* a free spare unit in table block 3 */

/* Version 2 images: the same spares, origins, units, uuid, time and labels
 * as the version 1 ones, made by a version 2 engine (format writes version
 * 2 only: the v1 images above can no longer be regenerated and are kept as
 * they are).  Their origin carried this identity at format, so every
 * superblock records it in origin_id. */
#define GOLDEN_ORIGIN_ID "file:golden"

/* golden-v2-4k.spare.gz: linear placement, 4 copies (L = 4). */
#define G2_4K_NAME "golden-v2-4k.spare.gz"
/* In v2, table block 1 holds spare units 252..255 (all in copy 3's
 * extent), then pending-only places: the bad unit is in block 0. */
#define G2_4K_BAD_SLOT 200u
#define G2_4K_UNMAPPED 500u /* remapped, then unmapped */

/* golden-v2-512.spare: minimal placement, 2 copies (L = 8). */
#define G2_512_NAME "golden-v2-512.spare"
#define G2_512_BAD_SLOT 100u /* a free spare unit in table block 3 */

/* The origin's bytes when the images were made: every 512-byte sector
 * starts with a line naming its unit and sector, the rest is a byte pattern.
 * A remapped unit's spare copy must read back exactly this. */
static inline void
golden_fill_unit (uint8_t *buf, uint32_t unit, uint64_t u)
{
  for (uint32_t s = 0; s < unit / 512; s++) {
    uint8_t *p = buf + (size_t) s * 512;
    for (uint32_t i = 0; i < 512; i++)
      p[i] = (uint8_t) (u * 7 + s * 3 + i);
    snprintf ((char *) p, 64, "remap golden origin unit %llu sector %u\n",
              (unsigned long long) u, s);
  }
}

#endif /* REMAP_TESTS_DATA_GOLDEN_H */
