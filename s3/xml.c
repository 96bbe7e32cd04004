/*
 * Safe XML reading on libxml2. See xml.h.
 */
#include "xml.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>

#include "buf.h"

xmlDoc *xml_parse(const char *data, size_t len)
{
	/* No XML_PARSE_NOENT (it would substitute entities), no DTDLOAD, no HUGE: libxml2's own
	 * limits on depth and text size stay on. */
	const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
	xmlDoc *doc;

	if (!data || len == 0 || len > XML_MAX_DOCUMENT || len > INT_MAX)
		return NULL;
	doc = xmlReadMemory(data, (int)len, NULL, NULL, options);
	if (!doc)
		return NULL;
	if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

bool xml_name_is(const xmlNode *node, const char *name)
{
	return node && node->type == XML_ELEMENT_NODE && node->name &&
	       strcmp((const char *)node->name, name) == 0;
}

xmlNode *xml_next(xmlNode *node, const char *name)
{
	for (node = node ? node->next : NULL; node; node = node->next) {
		if (xml_name_is(node, name))
			return node;
	}
	return NULL;
}

xmlNode *xml_child(xmlNode *parent, const char *name)
{
	xmlNode *node;

	if (!parent)
		return NULL;
	for (node = parent->children; node; node = node->next) {
		if (xml_name_is(node, name))
			return node;
	}
	return NULL;
}

char *xml_text(xmlNode *node, size_t *len)
{
	struct buf b;

	buf_init(&b);
	for (xmlNode *c = node ? node->children : NULL; c; c = c->next) {
		if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
			if (!buf_append_str(&b, (const char *)c->content)) {
				buf_fini(&b);
				return NULL;
			}
		}
	}
	*len = b.len;
	return buf_steal(&b);
}

static void wipe_nodes(xmlNode *node)
{
	for (; node; node = node->next) {
		/* Long text is never interned in the parser's dictionary, so it is ours to wipe;
		 * secrets are long. */
		if ((node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) &&
		    node->content && strlen((const char *)node->content) >= 8)
			OPENSSL_cleanse(node->content, strlen((const char *)node->content));
		wipe_nodes(node->children);
	}
}

void xml_wipe(xmlDoc *doc)
{
	if (doc)
		wipe_nodes(doc->children);
}
