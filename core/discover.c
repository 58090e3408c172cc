/* remap: discovery: finding a spare's metadata, and never taking client
 * data for it (SPEC 2.5, 2.7; docs/FORMAT.md section 12 is normative).
 *
 * Where metadata can be.  Copy 0 starts at unit 0 under every layout, and
 * unit 0 is never a data unit, so a valid superblock at byte 0 is used as
 * it is.  When that one is damaged, every byte offset where some (unit,
 * strategy, copies) layout of this spare's size puts a superblock is probed
 * (at most 673 reads of 512 bytes).
 *
 * Who can write what.  Under the spare's real layout R its bytes are of two
 * kinds: R's copy extents, written only by remap's metadata writer, and data
 * units, whose every byte a client chooses (a write to a remapped unit lands
 * there verbatim).  A client can therefore plant a superblock with any
 * uuid, any layout F, any generation and a correct CRC, at a place where F
 * puts a copy, and table blocks that validate against it.  Nothing inside
 * those bytes tells F from R: checksums, generations and the number of
 * copies found are all the client's to choose.  The one thing a client
 * cannot do is write inside R's extents.  So discovery decides by place:
 *
 *   1. Valid superblocks are grouped by identity: (uuid, unit, strategy,
 *      copies, spare units).  The decoder recomputes each one's layout and
 *      checks every stored offset, and a superblock counts only at the
 *      place its own layout gives to its copy.
 *   2. A group G is refuted when valid metadata of another group lies
 *      wholly inside G's extents, where only G's own writer writes: a
 *      superblock of another group, or a table block that validates
 *      against another group's superblock and is not also G's own block
 *      there.  Wholly: a structure that straddles the edge of G's extents
 *      has bytes a client chose, and its CRC proves nothing.
 *   3. Exactly one group left: it describes the spare.  None, or several:
 *      refuse, naming them.  Groups never vote.
 *
 * Why that is safe.  The real group R is never refuted: its extents hold
 * only what remap wrote for R (format writes every unit of every extent
 * before the first superblock, and format by force first erases every
 * older superblock, so nothing of an earlier spare survives there), and a
 * client's bytes never reach them.  A forgery F is refuted as soon as any
 * surviving piece of R lies inside what F claims (nearly always: F's copy
 * 0 starts at unit 0 too and covers R's first table blocks unless it fits
 * inside R's superblock unit); otherwise F survives beside R and open
 * refuses.  Either way a superblock at a place the chosen layout gives to
 * data decides nothing: its group was refuted, or nothing is chosen.  The
 * same rule applied to every byte of the chosen layout's extents
 * (check_foreign, called by the scan at open) makes open refuse when they
 * hold metadata of another identity; that is why repair and commits, which
 * write only there, never write over another spare's copy.
 *
 * Unreadable places.  When nothing valid is found and some read failed,
 * discovery returns that read's error, naming the byte, not "no metadata":
 * format without force must never write over a table it could not read
 * (SPEC 2.5), and remap_spare_has_metadata counts such a spare as holding
 * metadata.
 *
 * What it does not do: read data units other than the candidate places,
 * or write anything (wipe_superblocks, for format by force, is the one
 * writer here).
 *
 * Limits.  A place that cannot be read is no evidence: if every superblock
 * of R is unreadable or damaged and a forgery's is readable, the forgery
 * passes discovery, and the scan of its extents refuses only if it can read
 * one of R's table blocks inside them.  Step 2's table-block evidence is
 * sought only when two or more groups remain after the superblock
 * evidence, and reads at most EVIDENCE_BLOCKS blocks per pair of copies;
 * finding none leads to a refusal, never to a wrong choice.
 *
 * No locking: runs before an engine exists, or under the caller's lock.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discover.h"
#include "engine.h"

/* Offset 0, then p_i * u for 1 <= i < c of every layout: 8 unit sizes x
 * 3 strategies x (0 + 1 + ... + 7) copies. */
#define MAX_CANDIDATES (1 + 2 * 8 * 3 * 28)
#define EVIDENCE_BLOCKS 8u
#define MAX_ENTRIES ((REMAP_MAX_UNIT - REMAP_TB_HEADER_SIZE) / REMAP_ENTRY_SIZE)
#define SB_UUID offsetof (struct remap_sb_disk, uuid)
#define TB_UUID offsetof (struct remap_tb_disk, uuid)
#define MAP_UUID offsetof (struct remap_map_disk, uuid)

static uint32_t
get32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
    | (uint32_t) p[3] << 24;
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

/* Every byte offset where some layout of this spare puts a superblock,
 * sorted, without duplicates. */
static size_t
candidates (uint64_t spare_bytes, uint64_t *out)
{
  size_t n = 0;
  out[n++] = 0;
  for (uint32_t v = REMAP_SB_VERSION_1; v <= REMAP_SB_VERSION; v++)
    for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT; u *= 2)
      for (int s = REMAP_STRATEGY_MINIMAL; s <= REMAP_STRATEGY_GEOMETRIC;
           s++)
        for (uint32_t c = 1; c <= REMAP_MAX_COPIES; c++) {
          struct remap_layout l;
          if (remap_layout_compute_version (v, spare_bytes, u,
                                            (enum remap_strategy) s, c, &l,
                                            NULL) != 0)
            continue;
          for (uint32_t i = 1; i < c; i++)
            out[n++] = l.copy_offset[i] * u;
        }
  qsort (out, n, sizeof *out, cmp_u64);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (m == 0 || out[m - 1] != out[i])
      out[m++] = out[i];
  return m;
}

int
sb_decode_at (const uint8_t *buf, uint64_t off, struct remap_sb *sb,
              struct remap_error *err)
{
  int r = remap_sb_decode (buf, REMAP_SB_SIZE, sb, err);
  if (r)
    return r;
  if (sb->layout.copy_offset[sb->copy_index] * sb->layout.unit != off)
    return remap_set_error (err, -EUCLEAN,
                            "superblock at byte %llu is not where its layout "
                            "puts copy %u", (unsigned long long) off,
                            sb->copy_index);
  return 0;
}

/* One identity: the same spare (uuid) under the same layout. */
static bool
same_identity (const struct remap_sb *a, const struct remap_sb *b)
{
  return memcmp (a->uuid, b->uuid, 16) == 0
    && a->layout.unit == b->layout.unit
    && a->layout.strategy == b->layout.strategy
    && a->layout.copies == b->layout.copies
    && a->layout.spare_units == b->layout.spare_units;
}

/* True if every byte of [off, off + len) lies in some copy extent of l
 * (adjacent extents, as minimal placement makes them, join up). */
static bool
inside_extents (const struct remap_layout *l, uint64_t off, uint64_t len)
{
  uint64_t pos = off, end = off + len;
  while (pos < end) {
    uint32_t i;
    for (i = 0; i < l->copies; i++) {
      uint64_t a = l->copy_offset[i] * l->unit;
      uint64_t b = a + l->copy_units * l->unit;
      if (pos >= a && pos < b) {
        pos = b;
        break;
      }
    }
    if (i == l->copies)
      return false;
  }
  return true;
}

static void
describe (const struct remap_sb *sb, uint64_t off, char *out, size_t n)
{
  char u[37];
  remap_uuid_format (sb->uuid, u);
  snprintf (out, n, "uuid %s (unit %u, %s, %u copies; superblock at byte "
            "%llu)", u, sb->layout.unit,
            remap_strategy_name (sb->layout.strategy), sb->layout.copies,
            (unsigned long long) off);
}

/* ---- probing --------------------------------------------------------- */

struct found {
  uint64_t off;
  size_t group;
};

struct group {
  struct remap_sb sb;           /* the member with the highest sb_generation */
  uint64_t off;                 /* where that member lies */
  size_t by;                    /* refuted by this group; SIZE_MAX: not */
  uint64_t by_off;              /* where that group's metadata lies */
};

struct probe {
  struct found f[MAX_CANDIDATES];
  struct group g[MAX_CANDIDATES];
  size_t nf, ng;
  bool magic;                   /* a probe carried a remap magic */
  int io;                       /* the first failed read, 0 if none */
  uint64_t io_off;
  struct remap_error first;     /* why the first invalid probe was */
};

/* Read 512 bytes at off; a valid superblock joins its identity's group. */
static void
probe_at (struct remap_backend *spare, uint64_t off, struct probe *p,
          struct remap_sb *sb)
{
  uint8_t buf[REMAP_SB_SIZE];
  int r = remap_backend_pread (spare, buf, sizeof buf, off);
  if (r) {
    if (!p->io) {
      p->io = r;
      p->io_off = off;
    }
    return;
  }
  p->magic |= memcmp (buf, REMAP_SB_MAGIC, 8) == 0;
  if (sb_decode_at (buf, off, sb, &p->first) != 0)
    return;
  size_t j;
  for (j = 0; j < p->ng; j++)
    if (same_identity (&p->g[j].sb, sb))
      break;
  if (j == p->ng)
    p->g[p->ng++] = (struct group) { .sb = *sb, .off = off, .by = SIZE_MAX };
  else if (sb->sb_generation > p->g[j].sb.sb_generation) {
    p->g[j].sb = *sb;
    p->g[j].off = off;
  }
  p->f[p->nf++] = (struct found) { .off = off, .group = j };
}

/* Step 2, superblocks: another group's superblock inside g's extents. */
static void
refute_by_superblocks (struct probe *p)
{
  for (size_t j = 0; j < p->ng; j++)
    for (size_t i = 0; i < p->nf && p->g[j].by == SIZE_MAX; i++)
      if (p->f[i].group != j
          && inside_extents (&p->g[j].sb.layout, p->f[i].off,
                             REMAP_SB_SIZE)) {
        p->g[j].by = p->f[i].group;
        p->g[j].by_off = p->f[i].off;
      }
}

/* Is the block in buf (len bytes, at byte b) g's own valid table block? */
static bool
own_block (const struct remap_sb *g, const uint8_t *buf, uint64_t len,
           uint64_t b, struct remap_entry *ent)
{
  const struct remap_layout *l = &g->layout;
  if (len != l->unit || b % l->unit)
    return false;
  uint64_t u = b / l->unit;
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t t0 = remap_layout_block_unit (l, i, 0);
    if (u >= t0 && u < l->copy_offset[i] + l->copy_units) {
      struct remap_tb tb;
      return remap_tb_decode (g, buf, len, u - t0, &tb, ent, NULL) == 0;
    }
    if (u > l->copy_offset[i] && u < t0) {      /* a map unit (v2) */
      struct remap_mapu h;
      uint8_t *bits = malloc (l->unit);
      bool ok = bits && remap_map_decode (g, buf, len, u - l->copy_offset[i]
                                          - 1, &h, bits, NULL) == 0;
      free (bits);
      return ok;
    }
  }
  return false;
}

/* Step 2, table blocks: a block of h's copies lying wholly inside g's
 * extents that validates against h's superblock and is not g's own.  At
 * most EVIDENCE_BLOCKS reads per (copy of h, copy of g). */
static bool
tb_evidence (struct remap_backend *spare, const struct group *g,
             const struct group *h, uint8_t *buf, struct remap_entry *ent,
             uint64_t *where)
{
  const struct remap_layout *gl = &g->sb.layout, *hl = &h->sb.layout;
  uint64_t hu = hl->unit;

  for (uint32_t i = 0; i < hl->copies; i++) {
    uint64_t first = remap_layout_block_unit (hl, i, 0) * hu; /* block 0 */
    for (uint32_t j = 0; j < gl->copies; j++) {
      uint64_t lo = gl->copy_offset[j] * gl->unit;
      uint64_t hi = lo + gl->copy_units * gl->unit;
      uint64_t k = lo > first ? (lo - first + hu - 1) / hu : 0;
      for (unsigned n = 0; n < EVIDENCE_BLOCKS && k < hl->table_blocks;
           k++) {
        uint64_t b = first + k * hu;
        if (b >= hi || b + hu > spare->size)
          break;
        if (!inside_extents (gl, b, hu))
          continue;
        n++;
        struct remap_tb tb;
        if (remap_backend_pread (spare, buf, hu, b) == 0
            && remap_tb_decode (&h->sb, buf, hu, k, &tb, ent, NULL) == 0
            && !own_block (&g->sb, buf, hu, b, ent)) {
          *where = b;
          return true;
        }
      }
    }
  }
  return false;
}

static int
refute_by_table_blocks (struct remap_backend *spare, struct probe *p)
{
  size_t alive = 0;
  for (size_t j = 0; j < p->ng; j++)
    alive += p->g[j].by == SIZE_MAX;
  if (alive < 2)
    return 0;
  uint8_t *buf = eng_alloc_buf (REMAP_MAX_UNIT);
  struct remap_entry *ent = malloc (MAX_ENTRIES * sizeof *ent);
  if (!buf || !ent) {
    free (buf);
    free (ent);
    return -ENOMEM;
  }
  for (size_t j = 0; j < p->ng; j++)
    for (size_t h = 0; h < p->ng && p->g[j].by == SIZE_MAX; h++) {
      uint64_t where;
      if (h != j && tb_evidence (spare, &p->g[j], &p->g[h], buf, ent,
                                 &where)) {
        p->g[j].by = h;
        p->g[j].by_off = where;
      }
    }
  free (buf);
  free (ent);
  return 0;
}

/* ---- the verdict ------------------------------------------------------ */

/* Nothing valid anywhere: damaged metadata, unreadable places, or none. */
static int
verdict_none (struct remap_backend *spare, struct probe *p,
              struct remap_error *err)
{
  /* Table blocks without any superblock still mean "metadata here". */
  for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT && !p->magic;
       u *= 2) {
    uint8_t m[4];
    if (u + 4 > spare->size)
      break;
    int r = remap_backend_pread (spare, m, 4, u);
    if (r && !p->io) {
      p->io = r;
      p->io_off = u;
    }
    p->magic |= r == 0 && get32 (m) == REMAP_TB_MAGIC;
  }
  if (p->magic)
    return remap_set_error (err, -EUCLEAN,
                            "%s: every metadata copy is damaged (%s); the "
                            "remap table cannot be read.  Inspect it with "
                            "'remapctl dump %s'; do not format it unless "
                            "its remaps may be lost", spare->name,
                            p->first.msg[0] ? p->first.msg
                            : "no valid superblock", spare->name);
  if (p->io)
    return remap_set_error (err, p->io,
                            "%s: cannot tell whether it holds remap "
                            "metadata: reading byte %llu, where a superblock "
                            "may be, failed (%s).  Fix the read error; "
                            "formatting could destroy a table that is there",
                            spare->name, (unsigned long long) p->io_off,
                            strerror (-p->io));
  return remap_set_error (err, -ENOMEDIUM,
                          "%s holds no remap metadata; format it first "
                          "(format=yes, or 'remapctl format')", spare->name);
}

static int
verdict (struct remap_backend *spare, struct probe *p, struct remap_sb *best,
         struct remap_error *err)
{
  size_t a = SIZE_MAX, b = SIZE_MAX;
  for (size_t j = 0; j < p->ng; j++)
    if (p->g[j].by == SIZE_MAX) {
      if (a == SIZE_MAX)
        a = j;
      else if (b == SIZE_MAX)
        b = j;
    }
  if (a != SIZE_MAX && b == SIZE_MAX) {
    *best = p->g[a].sb;
    return 0;
  }
  char x[128], y[128];
  if (a != SIZE_MAX) {
    describe (&p->g[a].sb, p->g[a].off, x, sizeof x);
    describe (&p->g[b].sb, p->g[b].off, y, sizeof y);
    return remap_set_error (err, -EUCLEAN,
                            "%s: no valid superblock at byte 0, and the "
                            "others describe two spares or layouts: %s, and "
                            "%s.  One may be data a client wrote into a "
                            "remapped unit, so remap will not choose.  "
                            "Inspect with 'remapctl dump %s'; restore byte "
                            "0 from a backup, or format with force if the "
                            "remaps may be lost", spare->name, x, y,
                            spare->name);
  }
  const struct group *g = &p->g[0], *h = &p->g[g->by];
  describe (&g->sb, g->off, x, sizeof x);
  describe (&h->sb, h->off, y, sizeof y);
  return remap_set_error (err, -EUCLEAN,
                          "%s: no valid superblock at byte 0, and the others "
                          "contradict each other: metadata of %s lies at "
                          "byte %llu, inside the copies of %s.  remap will "
                          "not choose.  Inspect with 'remapctl dump %s'; "
                          "restore byte 0 from a backup, or format with "
                          "force if the remaps may be lost", spare->name, y,
                          (unsigned long long) g->by_off, x, spare->name);
}

static bool tb_crc_ok (const uint8_t *p, uint32_t u);
static bool map_crc_ok (const uint8_t *p, uint32_t u);
static int conflict (struct remap_backend *spare, const struct remap_sb *sb,
                     uint32_t copy, const char *what, const uint8_t *uuid,
                     uint64_t at, struct remap_error *err);

/* Byte 0 was damaged and one group is left.  Under every layout, copy 0's
 * first table block starts at byte `unit': if a valid table block of another
 * uuid or unit size starts at one of those places, the real spare may be
 * that one, whose superblocks are all damaged, and the group left a
 * forgery whose extents miss every byte of the real table (a copy 0 that
 * fits inside the real superblock unit): refuse rather than choose. */
static int
first_blocks_agree (struct remap_backend *spare, const struct remap_sb *best,
                    struct remap_error *err)
{
  uint8_t *buf = eng_alloc_buf (REMAP_MAX_UNIT);
  int r = 0;
  if (!buf)
    return remap_set_error (err, -ENOMEM, "out of memory");
  for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT && r == 0; u *= 2) {
    if (2 * (uint64_t) u > spare->size)
      break;
    if (remap_backend_pread (spare, buf, u, u) != 0)
      continue;
    /* Version 1 puts copy 0's first table block there, version 2 its
     * first map unit: either, valid and another spare's, is evidence. */
    size_t id = tb_crc_ok (buf, u) ? TB_UUID : map_crc_ok (buf, u) ? MAP_UUID
      : 0;
    if (id == 0)
      continue;
    if (memcmp (buf + id, best->uuid, 16) != 0 || u != best->layout.unit)
      r = conflict (spare, best, 0, "a table block or map unit of another "
                    "spare or unit size at the place every layout gives to "
                    "copy 0's first metadata unit after its superblock",
                    buf + id, u, err);
  }
  free (buf);
  return r;
}

int
discover (struct remap_backend *spare, struct remap_sb *best,
          struct remap_error *err)
{
  if (spare->size < REMAP_SB_SIZE)
    return remap_set_error (err, -ENOMEDIUM,
                            "%s holds no remap metadata (%llu bytes)",
                            spare->name, (unsigned long long) spare->size);
  uint64_t *cand = malloc (MAX_CANDIDATES * sizeof *cand);
  struct probe *p = calloc (1, sizeof *p);
  int r;
  if (!cand || !p) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  /* Byte 0 is never data, under any layout: a valid superblock there is
   * the spare's. */
  uint8_t buf[REMAP_SB_SIZE];
  r = remap_backend_pread (spare, buf, sizeof buf, 0);
  if (r == 0 && sb_decode_at (buf, 0, best, &p->first) == 0)
    goto out;
  if (r) {
    p->io = r;
    p->io_off = 0;
  }
  else
    p->magic = memcmp (buf, REMAP_SB_MAGIC, 8) == 0;
  size_t nc = candidates (spare->size, cand);
  for (size_t i = 1; i < nc; i++) {
    struct remap_sb sb;
    probe_at (spare, cand[i], p, &sb);
  }
  if (p->ng == 0) {
    r = verdict_none (spare, p, err);
    goto out;
  }
  refute_by_superblocks (p);
  if ((r = refute_by_table_blocks (spare, p)) != 0) {
    r = remap_set_error (err, r, "out of memory");
    goto out;
  }
  r = verdict (spare, p, best, err);
  if (r == 0)
    r = first_blocks_agree (spare, best, err);
 out:
  free (cand);
  free (p);
  return r;
}

bool
remap_spare_has_metadata (struct remap_backend *spare)
{
  struct remap_sb sb;
  return discover (spare, &sb, NULL) != -ENOMEDIUM;
}

/* ---- metadata of another identity inside the chosen extents ------------- */

static int
conflict (struct remap_backend *spare, const struct remap_sb *sb,
          uint32_t copy, const char *what, const uint8_t *uuid,
          uint64_t at, struct remap_error *err)
{
  char a[37], b[37];
  remap_uuid_format (sb->uuid, a);
  remap_uuid_format (uuid, b);
  return remap_set_error (err, -EUCLEAN,
                          "%s: metadata copy %u of uuid %s holds %s (uuid %s) "
                          "at byte %llu: the copies disagree on identity, so "
                          "remap will neither use nor repair them.  Inspect "
                          "with 'remapctl dump %s'; restore the spare from a "
                          "backup, or format it with force if its remaps "
                          "may be lost", spare->name, copy, a, what, b,
                          (unsigned long long) at, spare->name);
}

static bool
sb_crc_ok (const uint8_t *p)
{
  return memcmp (p, REMAP_SB_MAGIC, 8) == 0
    && get32 (p + REMAP_SB_SIZE - 4) == remap_crc32c (0, p,
                                                      REMAP_SB_SIZE - 4);
}

static bool
tb_crc_ok (const uint8_t *p, uint32_t u)
{
  return get32 (p) == REMAP_TB_MAGIC
    && get32 (p + 4) == remap_crc32c (0, p + 8, u - 8);
}

static bool
map_crc_ok (const uint8_t *p, uint32_t u)
{
  return get32 (p) == REMAP_MAP_MAGIC
    && get32 (p + 4) == remap_crc32c (0, p + 8, u - 8);
}

/* A superblock with a valid CRC at byte at, inside sb's extents.  Of the
 * same spare and layout it is damage (stale, or another copy's) that
 * repair may rewrite; otherwise it is another identity. */
static int
foreign_sb (struct remap_backend *spare, const struct remap_sb *sb,
            const uint8_t *p, uint64_t at, uint32_t copy,
            struct remap_error *err)
{
  struct remap_sb other;
  if (memcmp (p + SB_UUID, sb->uuid, 16) != 0)
    return conflict (spare, sb, copy, "a superblock of another spare",
                     p + SB_UUID, at, err);
  if (remap_sb_decode (p, REMAP_SB_SIZE, &other, NULL) != 0
      || same_identity (&other, sb))
    return 0;
  return conflict (spare, sb, copy, "a superblock for another layout",
                   p + SB_UUID, at, err);
}

/* A table block or (version 2) map unit with a valid CRC at base + o, of
 * some unit size u: another spare's, or one for another unit size, is
 * another identity.  A table block says its size in its header (no read
 * for the others); a map unit does not, so each size that fits is tried
 * (rare: only where the magic is). */
static int
foreign_unit (struct remap_backend *spare, const struct remap_sb *sb,
              const uint8_t *buf, uint64_t len, uint64_t base, uint64_t o,
              bool map, uint8_t **big, uint32_t copy,
              struct remap_error *err)
{
  uint64_t at = base + o;
  size_t id = map ? MAP_UUID : TB_UUID;
  for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT; u *= 2) {
    if (at % u || at + u > spare->size
        || !inside_extents (&sb->layout, at, u))
      break;
    const uint8_t *p = buf + o;
    if (!map && get32 (p + offsetof (struct remap_tb_disk, entries))
        != (u - REMAP_TB_HEADER_SIZE) / REMAP_ENTRY_SIZE)
      continue;
    if (o + u > len) {
      if (!*big && !(*big = eng_alloc_buf (REMAP_MAX_UNIT)))
        return remap_set_error (err, -ENOMEM, "out of memory");
      if (remap_backend_pread (spare, *big, u, at) != 0)
        continue;
      p = *big;
    }
    if (!(map ? map_crc_ok (p, u) : tb_crc_ok (p, u)))
      continue;
    if (memcmp (p + id, sb->uuid, 16) != 0)
      return conflict (spare, sb, copy, map ? "a map unit of another spare"
                       : "a table block of another spare", p + id, at, err);
    if (u != sb->layout.unit)
      return conflict (spare, sb, copy, map ? "a map unit for another unit "
                       "size" : "a table block for another unit size",
                       p + id, at, err);
    return 0;
  }
  return 0;
}

int
check_foreign (struct remap_backend *spare, const struct remap_sb *sb,
               const uint8_t *buf, uint64_t len, uint64_t base,
               uint32_t copy, struct remap_error *err)
{
  uint8_t *big = NULL;
  int r = 0;
  for (uint64_t o = 0; o + REMAP_SB_SIZE <= len && r == 0;
       o += REMAP_SB_SIZE) {
    const uint8_t *p = buf + o;
    if (sb_crc_ok (p))
      r = foreign_sb (spare, sb, p, base + o, copy, err);
    else if (get32 (p) == REMAP_TB_MAGIC)
      r = foreign_unit (spare, sb, buf, len, base, o, false, &big, copy,
                        err);
    else if (get32 (p) == REMAP_MAP_MAGIC)
      r = foreign_unit (spare, sb, buf, len, base, o, true, &big, copy,
                        err);
  }
  free (big);
  return r;
}

/* ---- format by force ---------------------------------------------------- */

int
wipe_superblocks (struct remap_backend *spare, struct remap_error *err)
{
  static const uint8_t zero[REMAP_SB_SIZE];
  uint64_t *cand = malloc (MAX_CANDIDATES * sizeof *cand);
  int r = 0;
  if (!cand)
    return remap_set_error (err, -ENOMEM, "out of memory");
  size_t nc = spare->size < REMAP_SB_SIZE ? 0
    : candidates (spare->size, cand);
  for (size_t i = 0; i < nc && r == 0; i++) {
    uint8_t buf[REMAP_SB_SIZE];
    if (remap_backend_pread (spare, buf, sizeof buf, cand[i]) == 0
        && memcmp (buf, REMAP_SB_MAGIC, 8) != 0)
      continue;
    r = remap_backend_pwrite (spare, zero, sizeof zero, cand[i]);
    if (r)
      remap_set_error (err, r, "format: erasing the old superblock at byte "
                       "%llu of %s failed (%s)",
                       (unsigned long long) cand[i], spare->name,
                       strerror (-r));
  }
  free (cand);
  /* And every layout's first table block of copy 0 (first_blocks_agree
   * would take a leftover of the old spare for the real one). */
  for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT && r == 0; u *= 2) {
    uint8_t buf[REMAP_SB_SIZE];
    if (2 * (uint64_t) u > spare->size)
      break;
    if (remap_backend_pread (spare, buf, sizeof buf, u) == 0
        && get32 (buf) != REMAP_TB_MAGIC && get32 (buf) != REMAP_MAP_MAGIC)
      continue;
    r = remap_backend_pwrite (spare, zero, sizeof zero, u);
    if (r)
      remap_set_error (err, r, "format: erasing the old table block at "
                       "byte %u of %s failed (%s)", u, spare->name,
                       strerror (-r));
  }
  if (r == 0 && (r = remap_backend_flush (spare)) != 0)
    remap_set_error (err, r, "format: flushing %s after erasing its old "
                     "superblocks failed (%s)", spare->name, strerror (-r));
  return r;
}
