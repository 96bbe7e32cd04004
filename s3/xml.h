/*
 * Safe XML reading for S3 and STS responses, on libxml2.
 *
 * Documents come off the network, so parsing never touches the network, never loads or expands
 * external or internal entities, and refuses any document that carries a DTD (no S3 or STS
 * response has one; refusing them removes XXE and entity-expansion attacks outright). Elements
 * are found by local name, whatever namespace the server used.
 *
 * xmlInitParser() must have run once (main does it) before threads use these functions.
 */
#ifndef IRSAFS_S3_XML_H
#define IRSAFS_S3_XML_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

/* Largest document accepted, in bytes. */
#define XML_MAX_DOCUMENT (64u * 1024 * 1024)

/* Parses len bytes. Returns a document to free with xmlFreeDoc, or NULL when the bytes are not
 * well-formed XML, are too large, or carry a DTD. */
xmlDoc *xml_parse(const char *data, size_t len);

/* True when node is an element whose local name is `name`. */
bool xml_name_is(const xmlNode *node, const char *name);

/* First element child of parent with local name `name`, or NULL. Borrowed from the document. */
xmlNode *xml_child(xmlNode *parent, const char *name);

/* Next element sibling after node with local name `name`, or NULL. */
xmlNode *xml_next(xmlNode *node, const char *name);

/* The text content of an element: its text and CDATA children concatenated (entity references
 * are never expanded). Returns a NUL-terminated copy for the caller to free(), with its length
 * in *len (the text may contain NUL bytes only if the document did, which XML forbids), or NULL
 * when out of memory. */
char *xml_text(xmlNode *node, size_t *len);

/* Overwrites the text of every text node of doc, for responses that carry secrets (STS),
 * before xmlFreeDoc. Accepts NULL. */
void xml_wipe(xmlDoc *doc);

#endif
