/*
 * Credential snapshots. One allocation holds the struct and its three strings; the reference
 * count is atomic; the last unref wipes the whole block with OPENSSL_cleanse before freeing it.
 */
#include "credentials.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct s3_credentials {
	atomic_uint refs;
	size_t size; /* of the whole allocation, for wiping */
	time_t expiration;
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL if none */
	const char *source;
	char strings[]; /* the four strings, back to back */
};

struct s3_credentials *s3_credentials_create(const char *access_key_id,
					     const char *secret_access_key,
					     const char *session_token, time_t expiration,
					     const char *source)
{
	size_t akid_len, secret_len, token_len, source_len, size;
	struct s3_credentials *c;
	char *p;

	if (!access_key_id || !*access_key_id || !secret_access_key || !*secret_access_key)
		return NULL;
	if (session_token && !*session_token)
		session_token = NULL;
	if (!source)
		source = "unknown";
	akid_len = strlen(access_key_id) + 1;
	secret_len = strlen(secret_access_key) + 1;
	token_len = session_token ? strlen(session_token) + 1 : 0;
	source_len = strlen(source) + 1;
	size = sizeof(*c) + akid_len + secret_len + token_len + source_len;
	c = calloc(1, size);
	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->size = size;
	c->expiration = expiration;
	p = c->strings;
	c->access_key_id = memcpy(p, access_key_id, akid_len);
	p += akid_len;
	c->secret_access_key = memcpy(p, secret_access_key, secret_len);
	p += secret_len;
	if (session_token) {
		c->session_token = memcpy(p, session_token, token_len);
		p += token_len;
	}
	c->source = memcpy(p, source, source_len);
	return c;
}

struct s3_credentials *s3_credentials_ref(struct s3_credentials *creds)
{
	atomic_fetch_add_explicit(&creds->refs, 1, memory_order_relaxed);
	return creds;
}

void s3_credentials_unref(struct s3_credentials *creds)
{
	if (!creds)
		return;
	if (atomic_fetch_sub_explicit(&creds->refs, 1, memory_order_acq_rel) != 1)
		return;
	OPENSSL_cleanse(creds, creds->size);
	free(creds);
}

const char *s3_credentials_access_key_id(const struct s3_credentials *creds)
{
	return creds->access_key_id;
}

const char *s3_credentials_secret_access_key(const struct s3_credentials *creds)
{
	return creds->secret_access_key;
}

const char *s3_credentials_session_token(const struct s3_credentials *creds)
{
	return creds->session_token;
}

time_t s3_credentials_expiration(const struct s3_credentials *creds)
{
	return creds->expiration;
}

const char *s3_credentials_source(const struct s3_credentials *creds)
{
	return creds->source;
}
