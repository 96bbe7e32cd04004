/*
 * ListObjectsV2 page parsing: normal and url-encoded pages, truncation, namespaces, malformed
 * and hostile documents, and a huge page.
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "harness.h"
#include "s3/buf.h"
#include "s3/listing.h"

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static enum s3_status parse(const char *xml, struct s3_listing *l, struct s3_error *err)
{
	s3_error_clear(err);
	return s3_listing_parse(xml, strlen(xml), l, err);
}

static void test_normal(void)
{
	const char *xml = HEAD "<ListBucketResult " NS "><Name>b</Name><Prefix>dir/</Prefix>"
			       "<KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>"
			       "<Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
			       "<Contents><Key>dir/a+b%20c.txt</Key>"
			       "<LastModified>2026-11-29T07:35:24.000Z</LastModified>"
			       "<ETag>&quot;0123abcd&quot;</ETag><Size>42</Size>"
			       "<StorageClass>STANDARD</StorageClass></Contents>"
			       "<Contents><Key>dir/empty</Key>"
			       "<LastModified>2026-01-01T00:00:00Z</LastModified>"
			       "<ETag>\"e\"</ETag><Size>0</Size></Contents>"
			       "<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
			       "</ListBucketResult>";
	struct s3_listing l;
	struct s3_error err;

	CHECK(parse(xml, &l, &err) == S3_OK, "normal page parses: %s", err.message);
	CHECK(l.nobjects == 2 && l.nprefixes == 1, "2 objects, 1 prefix");
	if (l.nobjects == 2 && l.nprefixes == 1) {
		/* Not url-encoded: '+' and "%20" are literal. */
		CHECK_STR(l.objects[0].key, "dir/a+b%20c.txt", "raw key kept as is");
		CHECK(l.objects[0].size == 42, "size");
		CHECK(l.objects[0].mtime == 1795937724, "mtime %lld", (long long)l.objects[0].mtime);
		CHECK_STR(l.objects[0].etag, "\"0123abcd\"", "etag with quotes");
		CHECK_STR(l.objects[0].storage_class, "STANDARD", "storage class");
		CHECK(l.objects[1].size == 0, "empty object");
		CHECK_STR(l.prefixes[0].prefix, "dir/sub/", "common prefix");
	}
	CHECK(!l.truncated && !l.next_token, "not truncated");
	s3_listing_fini(&l);
}

static void test_url_encoded(void)
{
	const char *xml = HEAD "<ListBucketResult " NS "><EncodingType>url</EncodingType>"
			       "<IsTruncated>true</IsTruncated>"
			       "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOw"
			       "M=</NextContinuationToken>"
			       "<Contents><Key>sample+1%2B2%25.jpg</Key><Size>1</Size></Contents>"
			       "<Contents><Key>nul%00byte</Key><Size>1</Size></Contents>"
			       "<Contents><Key>%F0%9F%98%80%3F%23</Key><Size>1</Size></Contents>"
			       "<CommonPrefixes><Prefix>a+dir/</Prefix></CommonPrefixes>"
			       "</ListBucketResult>";
	struct s3_listing l;
	struct s3_error err;

	CHECK(parse(xml, &l, &err) == S3_OK, "encoded page parses: %s", err.message);
	CHECK(l.nobjects == 3, "3 objects");
	if (l.nobjects == 3) {
		CHECK_STR(l.objects[0].key, "sample 1+2%.jpg", "'+' is a space, %%2B a plus");
		CHECK(l.objects[1].key_len == 8 && memcmp(l.objects[1].key, "nul\0byte", 8) == 0,
		      "NUL byte kept with its length");
		CHECK_STR(l.objects[2].key, "\xF0\x9F\x98\x80?#", "emoji and reserved characters");
		CHECK(l.objects[0].mtime == 0, "no LastModified gives 0");
		CHECK(l.objects[0].etag == NULL, "no ETag gives NULL");
	}
	CHECK(l.nprefixes == 1 && strcmp(l.prefixes[0].prefix, "a dir/") == 0, "prefix decoded");
	CHECK(l.truncated, "truncated");
	CHECK_STR(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", "token verbatim");
	s3_listing_fini(&l);
}

static void test_namespaces(void)
{
	static const char *const docs[] = {
		HEAD "<ListBucketResult><Contents><Key>k</Key><Size>5</Size></Contents>"
		     "</ListBucketResult>",
		HEAD "<ListBucketResult xmlns=\"urn:other\"><Contents><Key>k</Key><Size>5</Size>"
		     "</Contents></ListBucketResult>",
		HEAD "<s3:ListBucketResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		     "<s3:Contents><s3:Key>k</s3:Key><s3:Size>5</s3:Size></s3:Contents>"
		     "</s3:ListBucketResult>",
		HEAD "<ListBucketResult " NS "><Contents><Key><![CDATA[k]]></Key><Size>5</Size>"
		     "<Owner><ID>x</ID></Owner><Unknown/></Contents></ListBucketResult>",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct s3_listing l;
		struct s3_error err;

		CHECK(parse(docs[i], &l, &err) == S3_OK, "namespace variant %zu parses: %s", i,
		      err.message);
		CHECK(l.nobjects == 1 && strcmp(l.objects[0].key, "k") == 0 &&
			      l.objects[0].size == 5,
		      "namespace variant %zu content", i);
		s3_listing_fini(&l);
	}
}

static void test_rejected(void)
{
	static const struct {
		const char *what;
		const char *xml;
	} cases[] = {
		{"empty", ""},
		{"not XML", "HTTP/1.1 200 OK"},
		{"truncated document", HEAD "<ListBucketResult><Contents><Key>a</Key>"},
		{"wrong root", HEAD "<Error><Code>x</Code></Error>"},
		{"missing key", HEAD "<ListBucketResult><Contents><Size>1</Size></Contents>"
				     "</ListBucketResult>"},
		{"empty key", HEAD "<ListBucketResult><Contents><Key></Key><Size>1</Size>"
				   "</Contents></ListBucketResult>"},
		{"missing size", HEAD "<ListBucketResult><Contents><Key>a</Key></Contents>"
				      "</ListBucketResult>"},
		{"negative size", HEAD "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size>"
				       "</Contents></ListBucketResult>"},
		{"size overflow", HEAD "<ListBucketResult><Contents><Key>a</Key>"
				       "<Size>99999999999999999999</Size></Contents>"
				       "</ListBucketResult>"},
		{"size with junk", HEAD "<ListBucketResult><Contents><Key>a</Key><Size>12abc</Size>"
					"</Contents></ListBucketResult>"},
		{"bad date", HEAD "<ListBucketResult><Contents><Key>a</Key><Size>1</Size>"
				  "<LastModified>yesterday</LastModified></Contents>"
				  "</ListBucketResult>"},
		{"bad escape", HEAD "<ListBucketResult><EncodingType>url</EncodingType><Contents>"
				    "<Key>a%zz</Key><Size>1</Size></Contents></ListBucketResult>"},
		{"truncated without token", HEAD "<ListBucketResult><IsTruncated>true</IsTruncated>"
						 "</ListBucketResult>"},
		{"prefix without Prefix", HEAD "<ListBucketResult><CommonPrefixes/>"
					       "</ListBucketResult>"},
		{"XXE", HEAD "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
			     "<ListBucketResult><Contents><Key>&x;</Key><Size>1</Size></Contents>"
			     "</ListBucketResult>"},
		{"billion laughs", HEAD "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
					"<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
					"<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
					"<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"
					"<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
					"<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">"
					"<!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">]>"
					"<ListBucketResult><Contents><Key>&g;</Key><Size>1</Size>"
					"</Contents></ListBucketResult>"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_listing l;
		struct s3_error err;
		enum s3_status st = parse(cases[i].xml, &l, &err);

		CHECK(st == S3_PROTOCOL, "%s is rejected (got %s)", cases[i].what,
		      s3_status_name(st));
		CHECK(err.message[0] != '\0', "%s has a message", cases[i].what);
		s3_listing_fini(&l);
	}
}

static void test_long_key(void)
{
	struct buf xml;
	struct s3_listing l;
	struct s3_error err;

	buf_init(&xml);
	buf_append_str(&xml, HEAD "<ListBucketResult><Contents><Key>");
	for (int i = 0; i < S3_MAX_KEY_LENGTH + 1; i++)
		buf_append_char(&xml, 'k');
	buf_append_str(&xml, "</Key><Size>1</Size></Contents></ListBucketResult>");
	CHECK(s3_listing_parse(xml.data, xml.len, &l, &err) == S3_PROTOCOL, "over-long key");
	s3_listing_fini(&l);
	buf_fini(&xml);
}

static void test_huge_page(void)
{
	enum { N = 20000 };
	struct buf xml;
	struct s3_listing l;
	struct s3_error err;
	bool ok = true;

	buf_init(&xml);
	buf_append_str(&xml, HEAD "<ListBucketResult " NS "><EncodingType>url</EncodingType>");
	for (int i = 0; i < N; i++)
		buf_appendf(&xml,
			    "<Contents><Key>dir/file%%20%06d</Key><Size>%d</Size>"
			    "<LastModified>2026-11-29T07:35:24.000Z</LastModified>"
			    "<ETag>&quot;%08x&quot;</ETag></Contents>",
			    i, i, (unsigned)i);
	buf_append_str(&xml, "</ListBucketResult>");
	CHECK(s3_listing_parse(xml.data, xml.len, &l, &err) == S3_OK, "huge page parses");
	CHECK(l.nobjects == N, "all %d objects", N);
	for (size_t i = 0; i < l.nobjects && ok; i++) {
		char want[32];

		snprintf(want, sizeof(want), "dir/file %06zu", i);
		ok = strcmp(l.objects[i].key, want) == 0 && l.objects[i].size == i;
	}
	CHECK(ok, "every object of the huge page is right");
	s3_listing_fini(&l);
	buf_fini(&xml);
}

int main(void)
{
	xmlInitParser();
	test_normal();
	test_url_encoded();
	test_namespaces();
	test_rejected();
	test_long_key();
	test_huge_page();
	xmlCleanupParser();
	return harness_report("test_listing");
}
