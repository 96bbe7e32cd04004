/*
 * Kernel read-ahead of the mount. See readahead.h.
 */
#include "readahead.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MOUNTINFO_MAX (8u << 20)

/* Compares a mountinfo path field of len bytes, where ' ', '\t', '\n' and '\\' appear as
 * octal escapes ("\040"), with a plain path. */
static bool escaped_equals(const char *field, size_t len, const char *path)
{
	size_t i = 0;

	while (i < len) {
		char c = field[i];

		if (c == '\\' && i + 3 < len && field[i + 1] >= '0' && field[i + 1] <= '3' &&
		    field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' &&
		    field[i + 3] <= '7') {
			c = (char)((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
				   (field[i + 3] - '0'));
			i += 4;
		} else {
			i++;
		}
		if (*path++ != c)
			return false;
	}
	return *path == '\0';
}

/* The next space-separated field of a line at *p (before end); false at the end of the line. */
static bool next_field(const char **p, const char *end, const char **field, size_t *len)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	if (s == end)
		return false;
	*field = s;
	while (s < end && *s != ' ')
		s++;
	*len = (size_t)(s - *field);
	*p = s;
	return true;
}

/* One line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER". */
static bool line_device(const char *line, const char *end, const char *mountpoint, unsigned *major,
			unsigned *minor)
{
	const char *p = line, *f;
	size_t len;
	char dev[32];
	char *rest;
	unsigned long maj, min;

	for (int i = 0; i < 3; i++) {
		if (!next_field(&p, end, &f, &len))
			return false;
	}
	/* f is MAJ:MIN */
	if (len >= sizeof(dev))
		return false;
	memcpy(dev, f, len);
	dev[len] = '\0';
	if (!next_field(&p, end, &f, &len)) /* root */
		return false;
	if (!next_field(&p, end, &f, &len) || !escaped_equals(f, len, mountpoint))
		return false;
	do { /* options, optional fields, then "-" */
		if (!next_field(&p, end, &f, &len))
			return false;
	} while (!(len == 1 && *f == '-'));
	if (!next_field(&p, end, &f, &len))
		return false;
	if (!((len == 4 && memcmp(f, "fuse", 4) == 0) || (len > 5 && memcmp(f, "fuse.", 5) == 0)))
		return false;
	errno = 0;
	maj = strtoul(dev, &rest, 10);
	if (errno || rest == dev || *rest != ':')
		return false;
	f = rest + 1;
	min = strtoul(f, &rest, 10);
	if (errno || rest == f || *rest != '\0' || maj > 0xfff || min > 0xfffff)
		return false;
	*major = (unsigned)maj;
	*minor = (unsigned)min;
	return true;
}

bool fs_mountinfo_device(const char *mountinfo, const char *mountpoint, unsigned *major,
			 unsigned *minor)
{
	bool found = false;

	/* Later lines are later mounts: the last match is the one on top. */
	for (const char *line = mountinfo; *line;) {
		const char *end = strchr(line, '\n');

		if (!end)
			end = line + strlen(line);
		if (line_device(line, end, mountpoint, major, minor))
			found = true;
		line = *end ? end + 1 : end;
	}
	return found;
}

static char *read_mountinfo(void)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	size_t cap = 64 * 1024, len = 0;
	char *text = NULL;

	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t n;

		if (!text || len + 1 == cap) {
			char *grown;

			if (text)
				cap *= 2;
			grown = cap <= MOUNTINFO_MAX ? realloc(text, cap) : NULL;
			if (!grown) {
				free(text);
				close(fd);
				errno = ENOMEM;
				return NULL;
			}
			text = grown;
		}
		n = read(fd, text + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			free(text);
			close(fd);
			errno = saved;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	return text;
}

int fs_set_read_ahead(const char *mountpoint, uint64_t bytes, char *err, size_t errlen)
{
	char *mountinfo = read_mountinfo();
	char path[64], value[32];
	unsigned major, minor;
	bool found;
	int fd, n;
	ssize_t written;

	if (!mountinfo) {
		snprintf(err, errlen, "cannot read /proc/self/mountinfo: %s", strerror(errno));
		return -1;
	}
	found = fs_mountinfo_device(mountinfo, mountpoint, &major, &minor);
	free(mountinfo);
	if (!found) {
		snprintf(err, errlen, "no FUSE mount at %s in /proc/self/mountinfo", mountpoint);
		return -1;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major, minor);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(value, sizeof(value), "%" PRIu64 "\n", bytes / 1024);
	written = write(fd, value, (size_t)n);
	if (written != n) {
		snprintf(err, errlen, "cannot write %s: %s", path,
			 written < 0 ? strerror(errno) : "short write");
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}
