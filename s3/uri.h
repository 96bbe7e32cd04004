/*
 * Percent-encoding as SigV4 and S3 want it. Pure functions.
 *
 * Encoding keeps the unreserved characters A-Z a-z 0-9 - _ . ~ and, when asked, '/'; every other
 * byte becomes %XX with upper-case hex. A space is always %20, never '+'. This is the one
 * encoding used for canonical URIs, canonical query strings and the URLs actually sent, so what
 * is signed is what is sent.
 */
#ifndef IRSAFS_S3_URI_H
#define IRSAFS_S3_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Appends the encoding of len bytes of in (which may contain any byte, NUL included) to out.
 * Returns false when out of memory. */
bool uri_encode(struct buf *out, const char *in, size_t len, bool keep_slash);

/* Appends the decoding of len bytes of in to out: %XX (either case) becomes the byte, and '+'
 * becomes a space when plus_is_space (S3's url encoding-type in listings does that). Returns
 * false for a '%' not followed by two hex digits, or when out of memory. */
bool uri_decode(struct buf *out, const char *in, size_t len, bool plus_is_space);

#endif
