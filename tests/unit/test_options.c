/*
 * Command-line parsing: every option in both forms (--name value and -o name=value), defaults,
 * the environment, and the messages for bad input.
 */
#include <stdlib.h>
#include <string.h>

#include "fs/options.h"
#include "harness.h"

static bool parse(struct fs_options *o, char *err, size_t errlen, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = "irsafs";
	while (*args && argc < 31)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	return fs_options_parse(argc, argv, o, err, errlen);
}

static void test_defaults(void)
{
	const char *args[] = {"bucket", "/mnt", NULL};
	struct fs_options o;
	char err[256];

	CHECK(parse(&o, err, sizeof(err), args), "plain parse: %s", err);
	CHECK_STR(o.bucket, "bucket", "bucket");
	CHECK_STR(o.mountpoint, "/mnt", "mount point");
	CHECK_STR(o.prefix, "", "no prefix");
	CHECK(o.file_mode == 0444 && o.dir_mode == 0555, "default modes");
	CHECK(o.metadata_ttl_ms == 60000, "default TTL 60 s");
	CHECK(!o.foreground && !o.allow_other && !o.uid_set && !o.gid_set, "default flags");
	CHECK(o.log_level == LOG_LEVEL_INFO, "default level");
	CHECK(o.read_ahead == 1024 * 1024 && !o.read_ahead_set, "default read-ahead 1M");
	fs_options_fini(&o);
}

static void test_long_and_o_forms(void)
{
	const char *long_form[] = {"--prefix",   "data/x/", "--region=eu-west-1",
				   "--endpoint-url", "http://127.0.0.1:9000",
				   "--force-path-style", "--uid", "1000", "--gid=2000",
				   "--file-mode", "0640", "--dir-mode", "750", "--allow-other",
				   "-f", "--log-level", "debug", "--metadata-ttl", "2.5",
				   "--read-ahead", "256K", "b", "/m", NULL};
	const char *o_form[] = {"-o",
				"prefix=data/x/,region=eu-west-1,endpoint_url=http://127.0.0.1:9000,"
				"force_path_style,uid=1000,gid=2000,file_mode=0640,dir-mode=750,"
				"allow_other,foreground,log_level=debug,metadata_ttl=2.5,read_ahead=256K",
				"b", "/m", NULL};
	const char *const *forms[] = {long_form, o_form};

	for (int i = 0; i < 2; i++) {
		struct fs_options o;
		char err[256];

		CHECK(parse(&o, err, sizeof(err), forms[i]), "form %d parses: %s", i, err);
		CHECK_STR(o.prefix, "data/x/", "form %d prefix", i);
		CHECK_STR(o.region, "eu-west-1", "form %d region", i);
		CHECK_STR(o.endpoint_url, "http://127.0.0.1:9000", "form %d endpoint", i);
		CHECK(o.force_path_style && o.allow_other && o.foreground, "form %d flags", i);
		CHECK(o.uid_set && o.uid == 1000 && o.gid_set && o.gid == 2000, "form %d ids", i);
		CHECK(o.file_mode == 0640 && o.dir_mode == 0750, "form %d modes", i);
		CHECK(o.log_level == LOG_LEVEL_DEBUG, "form %d level", i);
		CHECK(o.metadata_ttl_ms == 2500, "form %d ttl", i);
		CHECK(o.read_ahead == 256 * 1024 && o.read_ahead_set, "form %d read-ahead", i);
		CHECK(o.fuse_options == NULL, "form %d: nothing left for FUSE", i);
		fs_options_fini(&o);
	}
}

static void test_fuse_passthrough(void)
{
	const char *args[] = {"-o", "rw,auto_unmount,max_read=131072,fsname=x\\,y", "-d",
			      "--metadata-ttl", "indefinite", "b", "/m", NULL};
	struct fs_options o;
	char err[256];

	CHECK(parse(&o, err, sizeof(err), args), "passthrough parses: %s", err);
	CHECK_STR(o.fuse_options, "auto_unmount,max_read=131072,fsname=x,y",
		  "FUSE options kept (rw dropped, escaped comma kept)");
	CHECK(o.log_level == LOG_LEVEL_DEBUG, "-d is debug");
	CHECK(o.metadata_ttl_ms < 0, "indefinite TTL");
	fs_options_fini(&o);
}

static void test_errors(void)
{
	static const struct {
		const char *args[6];
		const char *want; /* substring of the message */
	} cases[] = {
		{{NULL}, "missing BUCKET and MOUNTPOINT"},
		{{"b", NULL}, "missing MOUNTPOINT"},
		{{"b", "/m", "extra", NULL}, "unexpected argument 'extra'"},
		{{"--prefix", "data", "b", "/m", NULL}, "must end with '/'"},
		{{"--prefix", "/data/", "b", "/m", NULL}, "starts with '/'"},
		{{"--uid", "bob", "b", "/m", NULL}, "--uid 'bob' is not a numeric id"},
		{{"--gid", "-1", "b", "/m", NULL}, "--gid '-1' is not a numeric id"},
		{{"--file-mode", "0999", "b", "/m", NULL}, "not an octal permission mode"},
		{{"--dir-mode", "4755", "b", "/m", NULL}, "not an octal permission mode"},
		{{"--log-level", "loud", "b", "/m", NULL}, "--log-level 'loud'"},
		{{"--metadata-ttl", "-3", "b", "/m", NULL}, "--metadata-ttl '-3'"},
		{{"--metadata-ttl", "soon", "b", "/m", NULL}, "--metadata-ttl 'soon'"},
		{{"--frobnicate", "b", "/m", NULL}, "unknown option '--frobnicate'"},
		{{"-x", "b", "/m", NULL}, "unknown option '-x'"},
		{{"--allow-other=yes", "b", "/m", NULL}, "takes no value"},
		{{"b", "/m", "--region", NULL}, "needs a value"},
		{{"-o", "uid", "b", "/m", NULL}, "needs a value"},
		{{"-o", "allow_other=1", "b", "/m", NULL}, "takes no value"},
		{{"-o", NULL}, "-o needs a list"},
		{{"s3://bucket", "/m", NULL}, "without 's3://'"},
		{{"--endpoint-url", "", "b", "/m", NULL}, "needs a URL"},
		{{"--read-ahead", "lots", "b", "/m", NULL}, "--read-ahead 'lots' is not a size"},
		{{"--read-ahead", "-1", "b", "/m", NULL}, "--read-ahead '-1' is not a size"},
		{{"--read-ahead", "17M", "b", "/m", NULL}, "above the maximum of 16M"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fs_options o;
		char err[256] = "";
		bool ok = parse(&o, err, sizeof(err), cases[i].args);

		CHECK(!ok, "case %zu ('%s') is refused", i, cases[i].want);
		CHECK(strstr(err, cases[i].want) != NULL, "case %zu: message '%s' lacks '%s'", i,
		      err, cases[i].want);
		fs_options_fini(&o);
	}
}

static void test_read_ahead(void)
{
	static const struct {
		const char *value;
		uint64_t want;
	} cases[] = {{"0", 0}, {"4096", 4096}, {"1M", 1 << 20}, {"16M", 16 << 20}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = {"--read-ahead", cases[i].value, "b", "/m", NULL};
		struct fs_options o;
		char err[256];

		CHECK(parse(&o, err, sizeof(err), args), "--read-ahead %s parses: %s",
		      cases[i].value, err);
		CHECK(o.read_ahead == cases[i].want && o.read_ahead_set, "--read-ahead %s",
		      cases[i].value);
		fs_options_fini(&o);
	}
}

static void test_help_version(void)
{
	const char *help[] = {"--help", NULL}, *version[] = {"-V", NULL};
	struct fs_options o;
	char err[256];

	CHECK(parse(&o, err, sizeof(err), help) && o.help, "--help without positionals");
	fs_options_fini(&o);
	CHECK(parse(&o, err, sizeof(err), version) && o.version, "-V without positionals");
	fs_options_fini(&o);
}

static void test_env(void)
{
	const char *args[] = {"b", "/m", NULL}, *explicit_args[] = {"--region", "ap-south-1",
								    "b", "/m", NULL};
	struct fs_options o;
	char err[256];

	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_CA_BUNDLE");
	parse(&o, err, sizeof(err), args);
	CHECK(fs_options_apply_env(&o, err, sizeof(err)), "env applies");
	CHECK_STR(o.region, "us-east-1", "default region");
	CHECK(o.endpoint_url == NULL && o.ca_bundle == NULL, "no endpoint, no CA bundle");
	fs_options_fini(&o);

	setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
	setenv("AWS_ENDPOINT_URL", "http://generic:1", 1);
	parse(&o, err, sizeof(err), args);
	fs_options_apply_env(&o, err, sizeof(err));
	CHECK_STR(o.region, "eu-central-1", "AWS_DEFAULT_REGION");
	CHECK_STR(o.endpoint_url, "http://generic:1", "AWS_ENDPOINT_URL");
	fs_options_fini(&o);

	setenv("AWS_REGION", "eu-west-3", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://s3specific:2", 1);
	setenv("AWS_CA_BUNDLE", "/etc/ca.pem", 1);
	parse(&o, err, sizeof(err), args);
	fs_options_apply_env(&o, err, sizeof(err));
	CHECK_STR(o.region, "eu-west-3", "AWS_REGION wins over AWS_DEFAULT_REGION");
	CHECK_STR(o.endpoint_url, "http://s3specific:2", "AWS_ENDPOINT_URL_S3 wins");
	CHECK_STR(o.ca_bundle, "/etc/ca.pem", "AWS_CA_BUNDLE");
	fs_options_fini(&o);

	parse(&o, err, sizeof(err), explicit_args);
	fs_options_apply_env(&o, err, sizeof(err));
	CHECK_STR(o.region, "ap-south-1", "--region wins over the environment");
	fs_options_fini(&o);
}

int main(void)
{
	test_defaults();
	test_long_and_o_forms();
	test_fuse_passthrough();
	test_errors();
	test_read_ahead();
	test_help_version();
	test_env();
	return harness_report("test_options");
}
