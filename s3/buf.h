/*
 * A growable byte buffer, always NUL-terminated so it can be used as a C string when the content
 * is text. The caller owns the struct; buf_fini frees the storage.
 *
 * Appends return false when memory runs out (or the limit set with buf_set_limit would be
 * passed); the buffer then keeps its previous content.
 */
#ifndef IRSAFS_S3_BUF_H
#define IRSAFS_S3_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;   /* NULL until the first append; always NUL-terminated after it */
	size_t len;   /* bytes in use, not counting the terminator */
	size_t cap;   /* bytes allocated */
	size_t limit; /* maximum len; 0 means no limit */
};

/* Initialises an empty buffer (no allocation). */
void buf_init(struct buf *b);

/* Frees the storage and resets to empty. Accepts a zeroed or already finished buffer. */
void buf_fini(struct buf *b);

/* Caps the length the buffer may reach; appends past it fail. 0 removes the cap. */
void buf_set_limit(struct buf *b, size_t limit);

/* Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);

/* Appends len bytes. */
bool buf_append(struct buf *b, const void *data, size_t len);

/* Appends a NUL-terminated string. */
bool buf_append_str(struct buf *b, const char *s);

/* Appends one byte. */
bool buf_append_char(struct buf *b, char c);

/* Appends printf-formatted text. */
bool buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the storage to the caller (free() it) and resets the buffer. Returns an empty string,
 * never NULL, for an empty buffer, or NULL if that allocation fails. */
char *buf_steal(struct buf *b);

#endif
