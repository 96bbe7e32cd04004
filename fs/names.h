/*
 * Which S3 key components can be file names. Pure functions.
 *
 * A key becomes a path by splitting at '/'. A component is shown as a file or directory name
 * only if a POSIX name can carry it exactly: not empty ("a//b"), not "." or "..", at most 255
 * bytes, no NUL byte, and valid UTF-8 (S3 keys are UTF-8; anything else came from a broken or
 * hostile server). Keys with any other component are hidden, as Mountpoint for S3 hides them,
 * and counted.
 */
#ifndef IRSAFS_FS_NAMES_H
#define IRSAFS_FS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define FS_NAME_MAX 255

enum fs_name_verdict {
	FS_NAME_OK = 0,
	FS_NAME_EMPTY,
	FS_NAME_DOT,
	FS_NAME_TOO_LONG,
	FS_NAME_NUL,
	FS_NAME_BAD_UTF8,
};

/* Checks one component (no '/' inside) of len bytes. */
enum fs_name_verdict fs_name_check(const char *name, size_t len);

/* Why a name was refused, for logs: "empty component", "'.' or '..'", ... */
const char *fs_name_verdict_text(enum fs_name_verdict verdict);

/* True when len bytes of s are valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
bool fs_utf8_valid(const char *s, size_t len);

#endif
