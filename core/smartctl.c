/* remap: the bad LBAs of a smartctl JSON report (`smartctl -j -a DISK', or
 * -x), see remap_parse_smartctl in include/remap/badlist.h.
 *
 * Where smartctl (7.x) reports an LBA that failed, and what is taken:
 *
 *   ata_smart_self_test_log.{standard,extended}.table[].lba
 *        the first failing LBA of a self-test that stopped on a read
 *        failure (smartctl writes "lba" only then)
 *   ata_smart_error_log.{summary,extended}.table[].completion_registers.lba
 *        only for an uncorrectable media error: the error register's UNC
 *        bit (0x40), or an error_description naming UNC.  Interface CRC
 *        errors, aborted commands and timeouts say nothing about the
 *        medium (docs/ERRORS.md) and are left out
 *   nvme_self_test_log.table[].lba
 *        the failing LBA of an NVMe self-test, when the drive gave one
 *   nvme_error_information_log.table[].lba (a number or {"value": N})
 *        only with status_field.status_code_type 2 (media and data
 *        integrity errors)
 *
 * LBAs count logical blocks: logical_block_size at the top level, else the
 * first of nvme_namespaces[].formatted_lba_size; a caller may override it.
 * The JSON is parsed strictly (json-c); a NUL or control byte outside a
 * string is a syntax error that names line and column.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <json.h>

#include "remap/badlist.h"
#include "remap/parse.h"

#define MAX_REPORT (64u << 20)  /* far above any real report */

struct ctx {
  const char *src;
  struct remap_extents *out;
  uint64_t bs;
  struct remap_error *err;
};

static struct json_object *
get (struct json_object *o, const char *key)
{
  struct json_object *v = NULL;

  if (o && json_object_is_type (o, json_type_object)
      && json_object_object_get_ex (o, key, &v))
    return v;
  return NULL;
}

/* A non-negative integer (an int, or {"value": int}).  0, 1 when absent,
 * or -EINVAL naming `path'. */
static int
get_u64 (const struct ctx *c, struct json_object *v, const char *path,
         uint64_t *out)
{
  if (v && json_object_is_type (v, json_type_object))
    v = get (v, "value");
  if (!v || json_object_is_type (v, json_type_null))
    return 1;
  /* A value above INT64_MAX reads as INT64_MAX here, never negative. */
  if (!json_object_is_type (v, json_type_int)
      || json_object_get_int64 (v) < 0)
    return remap_set_error (c->err, -EINVAL, "%s: %s is not a whole number "
                            "at or above 0: not a smartctl report, or a "
                            "damaged one", c->src, path);
  *out = json_object_get_uint64 (v);
  return 0;
}

static int
add_lba (const struct ctx *c, uint64_t lba, const char *path)
{
  if (lba >= UINT64_MAX / c->bs)
    return remap_set_error (c->err, -EINVAL, "%s: %s %" PRIu64 " of %"
                            PRIu64 " bytes ends past 2^64 - 1", c->src, path,
                            lba, c->bs);
  if (remap_extents_add (c->out, lba * c->bs, c->bs))
    return remap_set_error (c->err, -ENOMEM, "out of memory");
  return 0;
}

/* Is an ATA error log entry an uncorrectable media error? */
static bool
ata_unc (struct json_object *ent)
{
  struct json_object *reg = get (get (ent, "completion_registers"), "error");
  struct json_object *d = get (ent, "error_description");

  if (reg && json_object_is_type (reg, json_type_int)
      && (json_object_get_int64 (reg) & 0x40))
    return true;
  return d && json_object_is_type (d, json_type_string)
    && strstr (json_object_get_string (d), "UNC") != NULL;
}

static bool
nvme_media (struct json_object *ent)
{
  struct json_object *t = get (get (ent, "status_field"), "status_code_type");

  return t && json_object_is_type (t, json_type_int)
    && json_object_get_int64 (t) == 2;
}

enum kind { SELF_TEST, ATA_ERROR, NVME_ERROR };

/* Every entry of table (an array, else an error) of the given kind. */
static int
walk_table (const struct ctx *c, struct json_object *table, const char *path,
            enum kind k)
{
  char where[128];
  int r;

  if (!table)
    return 0;
  if (!json_object_is_type (table, json_type_array))
    return remap_set_error (c->err, -EINVAL, "%s: %s is not an array: not a "
                            "smartctl report, or a damaged one", c->src,
                            path);
  for (size_t i = 0; i < json_object_array_length (table); i++) {
    struct json_object *ent = json_object_array_get_idx (table, i);
    struct json_object *lba;
    uint64_t v;

    if (k == ATA_ERROR && !ata_unc (ent))
      continue;
    if (k == NVME_ERROR && !nvme_media (ent))
      continue;
    lba = k == ATA_ERROR ? get (get (ent, "completion_registers"), "lba")
      : get (ent, "lba");
    snprintf (where, sizeof where, "%s[%zu].lba", path, i);
    if ((r = get_u64 (c, lba, where, &v)) < 0)
      return r;
    if (r == 0 && (r = add_lba (c, v, where)))
      return r;
  }
  return 0;
}

static int
block_size (const struct ctx *c, struct json_object *root, uint64_t *bs)
{
  struct json_object *ns = get (root, "nvme_namespaces");
  int r = get_u64 (c, get (root, "logical_block_size"), "logical_block_size",
                   bs);

  if (r == 1 && ns && json_object_is_type (ns, json_type_array)
      && json_object_array_length (ns) > 0)
    r = get_u64 (c, get (json_object_array_get_idx (ns, 0),
                         "formatted_lba_size"),
                 "nvme_namespaces[0].formatted_lba_size", bs);
  if (r < 0)
    return r;
  if (r == 1)
    return remap_set_error (c->err, -EINVAL, "%s: the report gives no "
                            "logical_block_size: give the disk's sector size "
                            "with --block-size N", c->src);
  if (*bs == 0 || *bs > (1u << 20))
    return remap_set_error (c->err, -EINVAL, "%s: logical_block_size %" PRIu64
                            " is not a sector size (1 byte to 1 MiB): give "
                            "the right one with --block-size N", c->src, *bs);
  return 0;
}

static int
parse_json (const char *text, size_t len, const char *src,
            struct json_object **root, struct remap_error *err)
{
  struct json_tokener *tok;
  size_t line = 1, col = 1, end;

  if (len > MAX_REPORT)
    return remap_set_error (err, -EINVAL, "%s: %zu bytes is larger than any "
                            "smartctl report (at most %u)", src, len,
                            MAX_REPORT);
  /* JSON allows no raw control byte, not even inside a string, but json-c
   * takes some, and stops at a NUL as if the text ended there: name it. */
  for (size_t i = 0; i < len; i++, col++) {
    unsigned char ch = (unsigned char) text[i];
    if (ch == '\n')
      line++, col = 0;
    else if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
      return remap_set_error (err, -EINVAL, "%s:%zu:%zu: control byte "
                              "\\x%02x%s: a smartctl report is text; is this "
                              "the right file?", src, line, col, ch,
                              ch == 0 ? " (NUL)" : "");
  }
  line = 1;
  col = 1;
  tok = json_tokener_new ();
  if (!tok)
    return remap_set_error (err, -ENOMEM, "out of memory");
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  *root = json_tokener_parse_ex (tok, text, (int) len);
  end = json_tokener_get_parse_end (tok);
  enum json_tokener_error je = json_tokener_get_error (tok);
  json_tokener_free (tok);
  /* Only blanks may follow the report. */
  while (*root && end < len && strchr (" \t\r\n", text[end]) && text[end])
    end++;
  if (*root && je == json_tokener_success && end == len)
    return 0;
  for (size_t i = 0; i < end && i < len; i++, col++)
    if (text[i] == '\n')
      line++, col = 0;
  json_object_put (*root);
  *root = NULL;
  if (end < len) {
    char esc[8];
    remap_escape (text + end, 1, esc, sizeof esc);
    return remap_set_error (err, -EINVAL, "%s:%zu:%zu: not JSON at \"%s\" "
                            "(%s): give the output of 'smartctl -j -a DISK'",
                            src, line, col, esc,
                            je == json_tokener_success ? "text after the "
                            "report" : json_tokener_error_desc (je));
  }
  return remap_set_error (err, -EINVAL, "%s:%zu:%zu: the JSON ends too soon "
                          "(%s): give the whole output of 'smartctl -j -a "
                          "DISK'", src, line, col,
                          je == json_tokener_continue ? "unfinished"
                          : json_tokener_error_desc (je));
}

int
remap_parse_smartctl (const char *text, size_t len, const char *src,
                      uint64_t bs, struct remap_extents *out,
                      uint64_t *bs_used, struct remap_error *err)
{
  static const struct { const char *a, *b; enum kind k; } tables[] = {
    { "ata_smart_self_test_log", "standard", SELF_TEST },
    { "ata_smart_self_test_log", "extended", SELF_TEST },
    { "ata_smart_error_log", "summary", ATA_ERROR },
    { "ata_smart_error_log", "extended", ATA_ERROR },
    { "nvme_self_test_log", NULL, SELF_TEST },
    { "nvme_error_information_log", NULL, NVME_ERROR },
  };
  struct remap_extents tmp = { 0 };
  struct ctx c = { .src = src ? src : "smartctl report", .out = &tmp,
                   .err = err };
  struct json_object *root;
  bool any_log = false;
  int r;

  if ((r = parse_json (text, len, c.src, &root, err)))
    return r;
  if (!json_object_is_type (root, json_type_object)) {
    r = remap_set_error (err, -EINVAL, "%s: the JSON is not an object: not "
                         "a smartctl report", c.src);
    goto out;
  }
  if (bs == 0 && (r = block_size (&c, root, &bs)))
    goto out;
  c.bs = bs;
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
    struct json_object *log = get (root, tables[i].a);
    char path[96];
    if (log && tables[i].b)
      log = get (log, tables[i].b);
    if (!log)
      continue;
    any_log = true;
    snprintf (path, sizeof path, "%s%s%s.table", tables[i].a,
              tables[i].b ? "." : "", tables[i].b ? tables[i].b : "");
    if ((r = walk_table (&c, get (log, "table"), path, tables[i].k)))
      goto out;
  }
  if (!any_log) {
    r = remap_set_error (err, -EINVAL, "%s: the report holds no self-test "
                         "log and no error log: run 'smartctl -j -a DISK' "
                         "(or -x), not only -H or -i", c.src);
    goto out;
  }
  for (size_t i = 0; i < tmp.n; i++)
    if (remap_extents_add (out, tmp.v[i].off, tmp.v[i].len)) {
      out->n -= i;
      r = remap_set_error (err, -ENOMEM, "out of memory");
      goto out;
    }
  remap_extents_normalize (out);
  if (bs_used)
    *bs_used = bs;
 out:
  remap_extents_free (&tmp);
  json_object_put (root);
  return r;
}
