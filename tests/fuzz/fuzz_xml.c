/*
 * Fuzzes the safe XML layer (s3/xml.h) that every S3 and STS body goes through.
 *
 * Input: a document for xml_parse; the same bytes behind an internal DTD subset make a second
 * document.
 *
 * Checks: a parsed document has a root element and no DTD; the input behind a DOCTYPE is always
 * refused (either the DTD is caught or the result is not well-formed); walking every element,
 * xml_name_is accepts its own name, xml_child finds the first element of that name and xml_next
 * steps through them to it; xml_text returns a NUL-terminated copy whose length is its strlen
 * (XML cannot carry NUL). xml_wipe runs before xmlFreeDoc, as for STS responses. Everything is
 * freed for LeakSanitizer.
 */

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "tests/fuzz/fuzz.h"
#include "s3/xml.h"

static const char dtd[] = "<!DOCTYPE r [<!ENTITY e \"expanded\">]>\n";

/* Sibling checks cost a scan of the siblings; past this many per parent, only text is read. */
#define CHECKED_SIBLINGS 64

static void check_siblings(xmlNode *parent, xmlNode *c)
{
	const char *name = (const char *)c->name;
	xmlNode *first = NULL, *n;

	for (xmlNode *k = parent->children; k && !first; k = k->next) {
		if (k->type == XML_ELEMENT_NODE && strcmp((const char *)k->name, name) == 0)
			first = k;
	}
	n = xml_child(parent, name);
	check(n == first, "xml_child missed the first element of a name");
	while (n && n != c)
		n = xml_next(n, name);
	check(n == c, "xml_next skipped an element");
}

static void walk(xmlNode *parent)
{
	size_t i = 0;

	for (xmlNode *c = parent->children; c; c = c->next) {
		size_t len = 0;
		char *text;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		check(xml_name_is(c, (const char *)c->name), "xml_name_is refuses its own name");
		if (i++ < CHECKED_SIBLINGS)
			check_siblings(parent, c);
		text = xml_text(c, &len);
		if (text)
			check(strlen(text) == len, "xml_text length differs from its strlen");
		free(text);
		walk(c);
	}
}

FUZZ_INITIALIZE_LIBXML2()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	xmlDoc *doc = xml_parse((const char *)data, size);
	char *with_dtd;

	if (doc) {
		check(!doc->intSubset && !doc->extSubset, "a document with a DTD was accepted");
		check(xmlDocGetRootElement(doc) != NULL, "a document without a root");
		/* xmlDoc starts like xmlNode (libxml2 relies on it): walk from the document. */
		walk((xmlNode *)doc);
		xml_wipe(doc);
		xmlFreeDoc(doc);
	}
	with_dtd = malloc(sizeof(dtd) - 1 + size);
	if (!with_dtd)
		return 0;
	memcpy(with_dtd, dtd, sizeof(dtd) - 1);
	memcpy(with_dtd + sizeof(dtd) - 1, data, size);
	doc = xml_parse(with_dtd, sizeof(dtd) - 1 + size);
	check(doc == NULL, "a document behind a DOCTYPE was accepted");
	xmlFreeDoc(doc);
	free(with_dtd);
	return 0;
}
