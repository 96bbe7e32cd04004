/*
 * Credential sources and renewal without a network: the JSON credential document, secret
 * files, source configuration from the environment, and the refresher's schedule, backoff and
 * reaction to rejected credentials, driven by a fake source.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/refresher.h"
#include "auth/source.h"
#include "harness.h"
#include "s3/log.h"

static void test_json(void)
{
	static const struct {
		const char *doc;
		enum s3_status want;
	} cases[] = {
		{"{\"AccessKeyId\":\"ASIA1\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
		 "\"Expiration\":\"2099-01-01T00:00:00Z\"}",
		 S3_OK},
		{"{\"Code\":\"Success\",\"AccessKeyId\":\"ASIA1\",\"SecretAccessKey\":\"s\","
		 "\"Token\":\"t\",\"Expiration\":\"2099-01-01T00:00:00Z\",\"Type\":\"AWS-HMAC\"}",
		 S3_OK},
		{"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"1970-01-01T00:00:00Z\"}",
		 S3_PROTOCOL},
		{"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"2020-01-01T00:00:00Z\"}",
		 S3_PROTOCOL},
		{"{\"Code\":\"Failure\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\"}", S3_PROTOCOL},
		{"{\"AccessKeyId\":\"A\"}", S3_PROTOCOL},
		{"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"s\"}", S3_PROTOCOL},
		{"{\"AccessKeyId\":1,\"SecretAccessKey\":\"s\"}", S3_PROTOCOL},
		{"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"soon\"}",
		 S3_PROTOCOL},
		{"[1,2,3]", S3_PROTOCOL},
		{"not json", S3_PROTOCOL},
		{"{\"AccessKeyId\":\"A\",", S3_PROTOCOL},
		{"", S3_PROTOCOL},
		{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]"
		 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		 S3_PROTOCOL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_credentials *c = NULL;
		struct s3_error err;
		enum s3_status st;

		s3_error_clear(&err);
		st = auth_parse_json_credentials(cases[i].doc, strlen(cases[i].doc), "test", &c, &err);
		CHECK(st == cases[i].want, "json case %zu: got %s (%s)", i, s3_status_name(st),
		      err.message);
		CHECK((st == S3_OK) == (c != NULL), "json case %zu: credentials iff ok", i);
		if (c) {
			CHECK_STR(s3_credentials_access_key_id(c), "ASIA1", "json case %zu akid", i);
			CHECK_STR(s3_credentials_session_token(c), "t", "json case %zu token", i);
			CHECK(s3_credentials_expiration(c) == 4070908800, "json case %zu expiry", i);
		}
		s3_credentials_unref(c);
	}
}

static void write_file(const char *path, const char *content, size_t len)
{
	FILE *f = fopen(path, "wb");

	fwrite(content, 1, len, f);
	fclose(f);
}

static void test_secret_file(void)
{
	char path[] = "/tmp/irsafs-test-secret-XXXXXX";
	int fd = mkstemp(path);
	struct s3_error err;
	char *s;

	close(fd);
	write_file(path, "  eyJhbGciOi.token.sig\n", 23);
	s = auth_read_secret_file(path, 1024, "token", &err);
	CHECK_STR(s, "eyJhbGciOi.token.sig", "trimmed token");
	auth_secret_free(s);
	write_file(path, " \n", 2);
	CHECK(!auth_read_secret_file(path, 1024, "token", &err) && strstr(err.message, "empty"),
	      "empty token file: %s", err.message);
	write_file(path, "a\0b", 3);
	CHECK(!auth_read_secret_file(path, 1024, "token", &err) && strstr(err.message, "NUL"),
	      "NUL in token file");
	write_file(path, "0123456789abcdef", 16);
	CHECK(!auth_read_secret_file(path, 8, "token", &err) && strstr(err.message, "larger"),
	      "oversized token file");
	unlink(path);
	CHECK(!auth_read_secret_file(path, 1024, "token", &err) &&
		      err.status == S3_INVALID_ARGUMENT && strstr(err.message, path),
	      "missing file names its path: %s", err.message);
}

static void clear_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_EC2_METADATA_DISABLED"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static void test_configuration(void)
{
	struct auth_context ctx = {NULL, "us-east-1"};
	struct auth_source *src = NULL;
	struct s3_error err;
	static const struct {
		const char *arn, *file, *session;
		enum s3_status want;
	} wi[] = {
		{NULL, NULL, NULL, S3_NO_CREDENTIALS},
		{"arn:aws:iam::123456789012:role/reader", NULL, NULL, S3_INVALID_ARGUMENT},
		{NULL, "/var/run/token", NULL, S3_INVALID_ARGUMENT},
		{"arn:aws:iam::123456789012:role/reader", "/t", NULL, S3_OK},
		{"arn:aws-cn:iam::123456789012:role/path/to/reader", "/t", NULL, S3_OK},
		{"arn:aws:iam::123456789012:role/reader", "/t", "my-session.1@x", S3_OK},
		{"arn:aws:iam::12345:role/reader", "/t", NULL, S3_INVALID_ARGUMENT},
		{"arn:aws:iam::123456789012:user/reader", "/t", NULL, S3_INVALID_ARGUMENT},
		{"role/reader", "/t", NULL, S3_INVALID_ARGUMENT},
		{"arn:aws:iam::123456789012:role/", "/t", NULL, S3_INVALID_ARGUMENT},
		{"arn:aws:iam::123456789012:role/reader", "/t", "x", S3_INVALID_ARGUMENT},
		{"arn:aws:iam::123456789012:role/reader", "/t", "bad name", S3_INVALID_ARGUMENT},
	};

	clear_env();
	for (size_t i = 0; i < sizeof(wi) / sizeof(wi[0]); i++) {
		enum s3_status st;

		clear_env();
		if (wi[i].arn)
			setenv("AWS_ROLE_ARN", wi[i].arn, 1);
		if (wi[i].file)
			setenv("AWS_WEB_IDENTITY_TOKEN_FILE", wi[i].file, 1);
		if (wi[i].session)
			setenv("AWS_ROLE_SESSION_NAME", wi[i].session, 1);
		s3_error_clear(&err);
		st = auth_web_identity_create(&ctx, &src, &err);
		CHECK(st == wi[i].want, "web identity case %zu: got %s (%s)", i, s3_status_name(st),
		      err.message);
		if (src)
			src->destroy(src);
		src = NULL;
	}

	clear_env();
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	CHECK(auth_env_create(&ctx, &src, &err) == S3_INVALID_ARGUMENT &&
		      strstr(err.message, "AWS_SECRET_ACCESS_KEY is not"),
	      "half of a key pair is an error");
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	CHECK(auth_env_create(&ctx, &src, &err) == S3_OK && src && !src->refreshable,
	      "static keys, not refreshable");
	if (src)
		src->destroy(src);

	clear_env();
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
	CHECK(auth_container_create(&ctx, &src, &err) == S3_INVALID_ARGUMENT,
	      "plain http to a remote host refused");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials", 1);
	src = NULL;
	CHECK(auth_container_create(&ctx, &src, &err) == S3_OK, "Pod Identity agent address");
	if (src)
		src->destroy(src);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
	src = NULL;
	CHECK(auth_container_create(&ctx, &src, &err) == S3_OK, "loopback allowed");
	if (src)
		src->destroy(src);

	clear_env();
	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	CHECK(auth_imds_create(&ctx, &src, &err) == S3_NO_CREDENTIALS, "IMDS can be disabled");
	clear_env();
}

/* A source whose credentials live `lifetime` seconds and that fails while `failing` > 0. */
struct fake_source {
	struct auth_source base;
	atomic_int fetches;
	atomic_int failing;
	int lifetime;
};

static enum s3_status fake_fetch(struct auth_source *self, struct s3_credentials **out,
				 struct s3_error *err)
{
	struct fake_source *f = (struct fake_source *)self;
	char akid[32];
	int n = atomic_fetch_add(&f->fetches, 1) + 1;

	if (atomic_load(&f->failing) > 0) {
		atomic_fetch_sub(&f->failing, 1);
		return s3_error_set(err, S3_THROTTLED, "Throttling: Rate exceeded");
	}
	snprintf(akid, sizeof(akid), "ASIAFAKE%d", n);
	*out = s3_credentials_create(akid, "secret", "token", time(NULL) + f->lifetime, "fake");
	return S3_OK;
}

static void fake_destroy(struct auth_source *self)
{
	(void)self;
}

static struct fake_source make_fake(int lifetime)
{
	struct fake_source f = {.base = {"fake", true, fake_fetch, fake_destroy}, .lifetime = lifetime};

	return f;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_refresher_renews_before_expiry(void)
{
	struct fake_source f = make_fake(4);
	struct s3_credentials *first = NULL, *c;
	struct s3_error err;
	struct auth_refresher *r;
	bool always = true;

	fake_fetch(&f.base, &first, &err);
	r = auth_refresher_create(&f.base, s3_credentials_ref(first));
	CHECK(auth_refresher_start(r) == 0, "thread starts");
	/* 4 s credentials are renewed about halfway; read continuously for 6 s. */
	for (int i = 0; i < 60; i++) {
		c = auth_refresher_get(r, &err);
		always = always && c != NULL;
		s3_credentials_unref(c);
		sleep_ms(100);
	}
	struct auth_refresher_stats st;
	auth_refresher_get_stats(r, &st);
	CHECK(always, "credentials available at every moment");
	CHECK(st.renewals >= 2, "renewed at least twice in 6 s of 4 s credentials (%llu)",
	      (unsigned long long)st.renewals);
	CHECK(st.expires_in_s > 0, "current credentials still valid");
	c = auth_refresher_get(r, &err);
	CHECK(c && c != first, "the credentials changed");
	s3_credentials_unref(c);
	s3_credentials_unref(first);
	auth_refresher_destroy(r);
}

static void test_refresher_backoff_and_rejection(void)
{
	struct fake_source f = make_fake(3600);
	struct s3_credentials *first = NULL, *c;
	struct s3_error err;
	struct auth_refresher *r;

	fake_fetch(&f.base, &first, &err);
	r = auth_refresher_create(&f.base, s3_credentials_ref(first));
	auth_refresher_start(r);
	/* S3 refuses them: renewed at once, and the caller gets new ones. */
	auth_refresher_rejected(r, first);
	c = auth_refresher_get(r, &err);
	CHECK(c && c != first, "rejected credentials replaced at once");
	CHECK(atomic_load(&f.fetches) == 2, "one renewal (%d fetches)", atomic_load(&f.fetches));
	/* Rejecting credentials that were already replaced does nothing. */
	auth_refresher_rejected(r, first);
	CHECK(atomic_load(&f.fetches) == 2, "stale rejection ignored");
	/* A renewal that fails keeps the current credentials. */
	atomic_store(&f.failing, 2);
	auth_refresher_rejected(r, c);
	struct s3_credentials *d = auth_refresher_get(r, &err);
	CHECK(d == c, "a failed renewal keeps the valid credentials");
	s3_credentials_unref(d);
	/* ...and is retried with backoff (1 s, then 2 s) until it succeeds. */
	for (int i = 0; i < 60 && atomic_load(&f.fetches) < 5; i++)
		sleep_ms(100);
	struct auth_refresher_stats st;
	auth_refresher_get_stats(r, &st);
	CHECK(atomic_load(&f.fetches) == 5 && st.failures == 2,
	      "retried after failures (%d fetches, %llu failures)", atomic_load(&f.fetches),
	      (unsigned long long)st.failures);
	d = auth_refresher_get(r, &err);
	CHECK(d && d != c, "new credentials after the retries");
	s3_credentials_unref(d);
	s3_credentials_unref(c);
	s3_credentials_unref(first);
	auth_refresher_destroy(r);
}

static void test_refresher_expired(void)
{
	struct fake_source f = make_fake(1);
	struct s3_credentials *c;
	struct s3_error err;
	struct auth_refresher *r;

	/* Credentials already expired, no thread, renewals failing: an error that says why,
	 * not a hang. */
	atomic_store(&f.failing, 100);
	r = auth_refresher_create(&f.base, s3_credentials_create("A", "s", "t", time(NULL) - 1,
								  "fake"));
	s3_error_clear(&err);
	c = auth_refresher_get(r, &err);
	CHECK(!c && err.status == S3_EXPIRED_CREDENTIALS && strstr(err.message, "Throttling"),
	      "expired and not renewable: %s", err.message);
	/* While the failed renewal backs off, requests fail at once without asking again. */
	c = auth_refresher_get(r, &err);
	CHECK(!c && atomic_load(&f.fetches) == 1, "no new fetch during the backoff (%d)",
	      atomic_load(&f.fetches));
	atomic_store(&f.failing, 0);
	f.lifetime = 60;
	sleep_ms(1100);
	c = auth_refresher_get(r, &err);
	CHECK(c != NULL, "renewed inline once the source recovers and the backoff ended");
	s3_credentials_unref(c);
	auth_refresher_destroy(r);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	test_json();
	test_secret_file();
	test_configuration();
	test_refresher_expired();
	test_refresher_backoff_and_rejection();
	test_refresher_renews_before_expiry();
	return harness_report("test_auth");
}
