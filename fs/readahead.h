/*
 * The kernel's read-ahead for the mount. The kernel reads a FUSE file in requests no larger
 * than its read-ahead window, 128 KiB unless told otherwise, however large the reader's
 * buffer; a larger window means fewer, larger requests and less CPU per byte (up to 1 MiB per
 * request, the FUSE limit). The window belongs to the mount's backing device and is set in
 * sysfs, /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, which takes root and a writable /sys (a
 * privileged container has both).
 */
#ifndef IRSAFS_FS_READAHEAD_H
#define IRSAFS_FS_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Finds the device of the most recent FUSE mount at mountpoint (absolute, as the kernel
 * shows it) in the text of /proc/self/mountinfo. Pure. Returns false if there is none. */
bool fs_mountinfo_device(const char *mountinfo, const char *mountpoint, unsigned *major,
			 unsigned *minor);

/* Sets the read-ahead of the FUSE mount at mountpoint to bytes, rounded down to KiB. Returns
 * 0, or -1 with the reason in err. */
int fs_set_read_ahead(const char *mountpoint, uint64_t bytes, char *err, size_t errlen);

#endif
