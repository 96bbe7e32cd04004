/*
 * Finding the mount's device in /proc/self/mountinfo, whose read-ahead irsafs then sets.
 */
#include <string.h>

#include "fs/readahead.h"
#include "harness.h"

#define ROOT			 "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
#define FUSE_AT(dev, path, type) "97 22 " dev " / " path " ro,nosuid,nodev - " type " irsafs:b rw\n"

static void test_devices(void)
{
	static const struct {
		const char *mountinfo;
		const char *mountpoint;
		bool found;
		unsigned major, minor;
	} cases[] = {
	    {ROOT FUSE_AT("0:52", "/mnt/data", "fuse.irsafs"), "/mnt/data", true, 0, 52},
	    /* plain "fuse" type (no subtype) */
	    {ROOT FUSE_AT("0:53", "/mnt/data", "fuse"), "/mnt/data", true, 0, 53},
	    /* a prefix of the path, or a longer path, is another mount */
	    {ROOT FUSE_AT("0:52", "/mnt/data2", "fuse.irsafs"), "/mnt/data", false, 0, 0},
	    {ROOT FUSE_AT("0:52", "/mnt", "fuse.irsafs"), "/mnt/data", false, 0, 0},
	    /* not FUSE: never touch another file system's device */
	    {ROOT FUSE_AT("8:1", "/mnt/data", "ext4"), "/mnt/data", false, 0, 0},
	    {ROOT FUSE_AT("0:60", "/mnt/data", "fusectl"), "/mnt/data", false, 0, 0},
	    /* the last of stacked mounts is the one on top */
	    {ROOT FUSE_AT("0:52", "/m", "fuse.irsafs") FUSE_AT("0:58", "/m", "fuse.irsafs"), "/m",
	     true, 0, 58},
	    {ROOT FUSE_AT("0:52", "/m", "fuse.irsafs") FUSE_AT("0:58", "/m", "tmpfs"), "/m", true,
	     0, 52},
	    /* spaces, tabs, newlines and backslashes in paths are octal escapes */
	    {ROOT FUSE_AT("0:70", "/tmp/a\\040b\\011c\\012d\\134e", "fuse.irsafs"),
	     "/tmp/a b\tc\nd\\e", true, 0, 70},
	    {ROOT FUSE_AT("0:70", "/tmp/a\\040b", "fuse.irsafs"), "/tmp/a\\040b", false, 0, 0},
	    /* optional fields before the separator */
	    {ROOT "97 22 0:80 / /p rw shared:5 master:2 propagate_from:1 - fuse.irsafs b rw\n",
	     "/p", true, 0, 80},
	    /* large device numbers, and the last line without a newline */
	    {ROOT "97 22 259:1048575 / /q rw - fuse.irsafs b rw", "/q", true, 259, 1048575},
	    /* malformed lines are skipped, not misread */
	    {"97 22 0:x / /r rw - fuse.irsafs b rw\n", "/r", false, 0, 0},
	    {"97 22 0:5: / /r rw - fuse.irsafs b rw\n", "/r", false, 0, 0},
	    {"97 22 05 / /r rw - fuse.irsafs b rw\n", "/r", false, 0, 0},
	    {"97 22 0:5 / /r rw fuse.irsafs b rw\n", "/r", false, 0, 0},
	    {"97 22 0:5 / /r\n", "/r", false, 0, 0},
	    {"97 22 0:5 /\n", "/r", false, 0, 0},
	    {"97 22 0:99999999999999999999 / /r rw - fuse.irsafs b rw\n", "/r", false, 0, 0},
	    {"\n\n   \n", "/r", false, 0, 0},
	    {"", "/r", false, 0, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned major = 1234, minor = 5678;
		bool found =
		    fs_mountinfo_device(cases[i].mountinfo, cases[i].mountpoint, &major, &minor);

		CHECK(found == cases[i].found, "case %zu: found %d", i, found);
		if (found && cases[i].found)
			CHECK(major == cases[i].major && minor == cases[i].minor,
			      "case %zu: %u:%u, want %u:%u", i, major, minor, cases[i].major,
			      cases[i].minor);
	}
}

int main(void)
{
	test_devices();
	return harness_report("test_readahead");
}
