/* remap: replay driver for the fuzz targets, for builds without libFuzzer.
 *
 *   fuzz_meta DIR|FILE...
 *
 * Calls LLVMFuzzerTestOneInput once on every regular file named, and on
 * every regular file inside every directory named (not recursive, in name
 * order, so a failure is reproducible).  This is how ctest replays
 * tests/fuzz/corpus/ with gcc: every past crasher and every seed must run
 * clean.  A crash, sanitizer report or abort fails the test by itself; the
 * driver fails too when it cannot read an input or finds no input at all.
 * It prints each file's name to stderr before running it, so the last name
 * printed is the culprit.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  if (!f) {
    fprintf (stderr, "replay: %s: %s\n", path, strerror (errno));
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc (cap);
  for (;;) {
    if (!buf) {
      fclose (f);
      fprintf (stderr, "replay: out of memory\n");
      return -1;
    }
    n += fread (buf + n, 1, cap - n, f);
    if (n < cap)
      break;
    uint8_t *nb = realloc (buf, cap * 2);
    if (!nb)
      free (buf);
    buf = nb;
    cap *= 2;
  }
  int bad = ferror (f);
  fclose (f);
  if (bad) {
    fprintf (stderr, "replay: %s: read error\n", path);
    free (buf);
    return -1;
  }
  fprintf (stderr, "replay: %s (%zu bytes)\n", path, n);
  LLVMFuzzerTestOneInput (buf, n);
  free (buf);
  return 0;
}

static int
by_name (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Run every regular file in dir; returns the count, or -1. */
static int
run_dir (const char *dir)
{
  DIR *d = opendir (dir);
  if (!d) {
    fprintf (stderr, "replay: %s: %s\n", dir, strerror (errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc (names, cap * sizeof *names);
      if (!nn)
        break;
      names = nn;
    }
    size_t len = strlen (dir) + strlen (de->d_name) + 2;
    if ((names[n] = malloc (len)) == NULL)
      break;
    snprintf (names[n++], len, "%s/%s", dir, de->d_name);
  }
  closedir (d);
  if (n)
    qsort (names, n, sizeof *names, by_name);
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (count >= 0 && stat (names[i], &st) == 0 && S_ISREG (st.st_mode))
      count = run_file (names[i]) == 0 ? count + 1 : -1;
    free (names[i]);
  }
  free (names);
  return count;
}

int
main (int argc, char **argv)
{
  int total = 0;

  if (argc < 2) {
    fprintf (stderr, "usage: %s DIR|FILE...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    struct stat st;
    int n;
    if (stat (argv[i], &st) != 0) {
      fprintf (stderr, "replay: %s: %s\n", argv[i], strerror (errno));
      return 1;
    }
    n = S_ISDIR (st.st_mode)    ? run_dir (argv[i])
      : run_file (argv[i]) == 0 ? 1
                                : -1;
    if (n < 0)
      return 1;
    total += n;
  }
  if (total == 0) {
    fprintf (stderr, "replay: no inputs found\n");
    return 1;
  }
  fprintf (stderr, "replay: %d inputs ran clean\n", total);
  return 0;
}
