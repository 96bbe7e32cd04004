/*
 * Credential refresh. See refresher.h.
 *
 * State, all protected by `lock`:
 *   current      the snapshot handed out; replaced, never modified
 *   refreshing   a fetch is running (with the lock dropped); others wait on `changed`
 *   generation   bumped when a fetch ends, so waiters know theirs has happened
 *   refresh_now  someone needs a renewal before the schedule says so
 *   failures     consecutive failed fetches; retry_at is when to try again
 *   stopping     the thread must exit
 * The thread sleeps on `wake` until the renewal time, a request for one, or stop; it wakes at
 * least once a minute so a wall-clock change cannot make it oversleep. Waits use
 * CLOCK_MONOTONIC; expiry times are wall-clock (they come from STS).
 */
#include "refresher.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3/log.h"

#define MAX_LEAD_S 300        /* renew at the latest this long before expiry */
#define EXPIRY_MARGIN_S 5     /* credentials this close to expiry are not handed out */
#define WAIT_FOR_RENEWAL_S 10 /* longest a request waits for a renewal */
#define FORCED_BURST 3          /* renewals forced by S3 refusals ... */
#define FORCED_WINDOW_MS 10000 /* ... at most this many in this window */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS 30000
#define MAX_SLEEP_S 60

struct auth_refresher {
	struct auth_source *source; /* owned */
	pthread_mutex_t lock;
	pthread_cond_t wake;    /* the thread waits here */
	pthread_cond_t changed; /* waiters for a fetch's end wait here */
	struct s3_credentials *current; /* protected by lock */
	int64_t fetched_at;             /* lock; wall clock */
	uint64_t generation;            /* lock */
	bool refresh_now;               /* lock */
	bool refreshing;                /* lock */
	bool stopping;                  /* lock */
	bool running;                   /* lock */
	unsigned failures;              /* lock */
	struct timespec retry_at;       /* lock; monotonic */
	int64_t renew_at;               /* lock; wall clock, with jitter, 0 = never */
	struct s3_error last_error;     /* lock */
	uint64_t renewals, renewal_failures; /* lock */
	struct timespec forced[FORCED_BURST]; /* lock; when the last forced renewals began */
	unsigned nforced;                     /* lock; forced renewals so far */
	pthread_t thread;
};

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static struct timespec mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static struct timespec mono_after_ms(int64_t ms)
{
	struct timespec ts = mono_now();

	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static int64_t ms_until(struct timespec t)
{
	struct timespec now = mono_now();

	return (t.tv_sec - now.tv_sec) * 1000 + (t.tv_nsec - now.tv_nsec) / 1000000;
}

/* Plans the next renewal of current. Lock held. */
static void schedule(struct auth_refresher *r)
{
	int64_t exp = s3_credentials_expiration(r->current), lifetime, lead;

	if (!r->source->refreshable || exp == 0) {
		r->renew_at = 0;
		return;
	}
	lifetime = exp - r->fetched_at;
	lead = lifetime / 2 < MAX_LEAD_S ? lifetime / 2 : MAX_LEAD_S;
	if (lead < 1)
		lead = 1;
	/* Up to a tenth of the lead earlier, so a fleet of pods does not renew in step. */
	r->renew_at = exp - lead - (int64_t)arc4random_uniform((uint32_t)(lead / 10 + 1));
}

/* Whether the current credentials may still be handed out: not within the expiry margin (5 s,
 * or a quarter of their lifetime if that is shorter). Lock held. */
static bool usable(const struct auth_refresher *r)
{
	int64_t exp = s3_credentials_expiration(r->current), margin = (exp - r->fetched_at) / 4;

	if (margin > EXPIRY_MARGIN_S)
		margin = EXPIRY_MARGIN_S;
	return exp == 0 || wall_now() < exp - margin;
}

struct auth_refresher *auth_refresher_create(struct auth_source *source,
					     struct s3_credentials *initial)
{
	struct auth_refresher *r = calloc(1, sizeof(*r));
	pthread_condattr_t attr;

	if (!r) {
		source->destroy(source);
		s3_credentials_unref(initial);
		return NULL;
	}
	r->source = source;
	r->current = initial;
	r->fetched_at = wall_now();
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->wake, &attr);
	pthread_cond_init(&r->changed, &attr);
	pthread_condattr_destroy(&attr);
	schedule(r);
	return r;
}

/* One fetch with the lock dropped, installing the result; if a fetch is already running,
 * waits for that one instead. Called and returns with the lock held. */
static void refresh_locked(struct auth_refresher *r)
{
	struct s3_credentials *fresh = NULL;
	struct s3_error err;
	enum s3_status status;
	uint64_t gen = r->generation;
	char what[640], valid[24], attempt[16], retry[24];

	if (r->refreshing) {
		while (r->refreshing && r->generation == gen)
			pthread_cond_wait(&r->changed, &r->lock);
		return;
	}
	r->refreshing = true;
	r->refresh_now = false;
	pthread_mutex_unlock(&r->lock);
	s3_error_clear(&err);
	status = r->source->fetch(r->source, &fresh, &err);
	pthread_mutex_lock(&r->lock);
	r->refreshing = false;
	r->generation++;
	if (status == S3_OK) {
		s3_credentials_unref(r->current);
		r->current = fresh;
		r->fetched_at = wall_now();
		r->failures = 0;
		r->renewals++;
		schedule(r);
		snprintf(valid, sizeof(valid), "%lld",
			 (long long)(s3_credentials_expiration(fresh) - r->fetched_at));
		LOG_EVENT(LOG_LEVEL_INFO, "auth", "renewed credentials", {"source", r->source->name},
			  {"access_key", s3_credentials_access_key_id(fresh)},
			  {"valid_for_s", valid});
	} else {
		int64_t backoff = BACKOFF_BASE_MS << (r->failures < 5 ? r->failures : 5);

		if (backoff > BACKOFF_CAP_MS)
			backoff = BACKOFF_CAP_MS;
		/* Jitter: somewhere in the upper half of the backoff. */
		backoff = backoff / 2 + (int64_t)arc4random_uniform((uint32_t)(backoff / 2 + 1));
		r->failures++;
		r->renewal_failures++;
		r->retry_at = mono_after_ms(backoff);
		r->last_error = err;
		snprintf(attempt, sizeof(attempt), "%u", r->failures);
		snprintf(valid, sizeof(valid), "%lld",
			 (long long)(s3_credentials_expiration(r->current) - wall_now()));
		snprintf(retry, sizeof(retry), "%.1f", (double)backoff / 1000.0);
		LOG_EVENT(LOG_LEVEL_WARN, "auth",
			  "renewing credentials failed; the current ones stay in use",
			  {"source", r->source->name}, {"attempt", attempt},
			  {"error", s3_error_describe(&err, what, sizeof(what))},
			  {"valid_for_s", valid}, {"retry_in_s", retry});
	}
	pthread_cond_broadcast(&r->changed);
}

/* Whether a fetch is planned and, if so, in how many milliseconds (<= 0: due). Lock held. */
static bool next_fetch(const struct auth_refresher *r, int64_t *in_ms)
{
	if (r->refresh_now)
		*in_ms = 0;
	else if (r->failures)
		*in_ms = ms_until(r->retry_at);
	else if (r->renew_at)
		*in_ms = (r->renew_at - wall_now()) * 1000;
	else
		return false;
	return true;
}

static void *run(void *arg)
{
	struct auth_refresher *r = arg;
	sigset_t all;

	/* Signals are for the FUSE threads (see fs/main.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		int64_t in_ms = MAX_SLEEP_S * 1000;
		struct timespec deadline;

		if (next_fetch(r, &in_ms) && in_ms <= 0) {
			refresh_locked(r);
			continue;
		}
		deadline = mono_after_ms(in_ms < MAX_SLEEP_S * 1000 ? in_ms : MAX_SLEEP_S * 1000);
		pthread_cond_timedwait(&r->wake, &r->lock, &deadline);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int auth_refresher_start(struct auth_refresher *r)
{
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->source->refreshable && !r->running) {
		rc = pthread_create(&r->thread, NULL, run, r);
		r->running = rc == 0;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void auth_refresher_destroy(struct auth_refresher *r)
{
	bool running;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	running = r->running;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
	if (running)
		pthread_join(r->thread, NULL);
	s3_credentials_unref(r->current);
	r->source->destroy(r->source);
	pthread_cond_destroy(&r->wake);
	pthread_cond_destroy(&r->changed);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Waits, at most WAIT_FOR_RENEWAL_S, for the fetch that ends generation gen. Lock held. */
static void wait_for_fetch(struct auth_refresher *r, uint64_t gen)
{
	struct timespec deadline = mono_after_ms(WAIT_FOR_RENEWAL_S * 1000);

	while (r->generation == gen && !r->stopping) {
		if (pthread_cond_timedwait(&r->changed, &r->lock, &deadline) == ETIMEDOUT)
			break;
	}
}

/* Gets a renewal done (by the thread if it runs, else here) and waits for it; if one is
 * already asked for or running, waits for that one instead of asking again. Lock held. */
static void renew_and_wait(struct auth_refresher *r)
{
	uint64_t gen = r->generation;

	if (!r->running) {
		refresh_locked(r);
		return;
	}
	if (!r->refresh_now && !r->refreshing) {
		r->refresh_now = true;
		pthread_cond_signal(&r->wake);
	}
	wait_for_fetch(r, gen);
}

/* True while a failed renewal's backoff runs: asking again before it ends would only add
 * load to a source that is already failing. Lock held. */
static bool in_backoff(const struct auth_refresher *r)
{
	return r->failures > 0 && ms_until(r->retry_at) > 0;
}

struct s3_credentials *auth_refresher_get(struct auth_refresher *r, struct s3_error *err)
{
	struct s3_credentials *c = NULL;
	char what[640];

	pthread_mutex_lock(&r->lock);
	if (!usable(r) && r->source->refreshable && !in_backoff(r))
		renew_and_wait(r);
	if (usable(r)) {
		c = s3_credentials_ref(r->current);
	} else {
		s3_error_set(err, S3_EXPIRED_CREDENTIALS,
			     "the credentials from %s have expired and could not be renewed: %s",
			     r->source->name,
			     r->last_error.status != S3_OK
				     ? s3_error_describe(&r->last_error, what, sizeof(what))
				     : "no renewal finished in time");
	}
	pthread_mutex_unlock(&r->lock);
	return c;
}

void auth_refresher_rejected(struct auth_refresher *r, const struct s3_credentials *rejected)
{
	struct timespec *oldest;

	pthread_mutex_lock(&r->lock);
	if (!r->source->refreshable || r->current != rejected) {
		/* Static keys cannot be renewed; replaced ones need nothing more. */
	} else if (r->refresh_now || r->refreshing) {
		/* Requests refused together share the renewal under way. */
		wait_for_fetch(r, r->generation);
	} else {
		/* Renew unless a failing source is backing off, or S3 has refused FORCED_BURST
		 * fresh sets within FORCED_WINDOW_MS: then asking again for every request would
		 * only flood the source. */
		oldest = &r->forced[r->nforced % FORCED_BURST];
		if (!in_backoff(r) &&
		    (r->nforced < FORCED_BURST || -ms_until(*oldest) >= FORCED_WINDOW_MS)) {
			*oldest = mono_now();
			r->nforced++;
			LOG_EVENT(LOG_LEVEL_INFO, "auth", "S3 refused the credentials; renewing now",
				  {"source", r->source->name},
				  {"access_key", s3_credentials_access_key_id(rejected)});
			renew_and_wait(r);
		}
	}
	pthread_mutex_unlock(&r->lock);
}

void auth_refresher_get_stats(struct auth_refresher *r, struct auth_refresher_stats *out)
{
	int64_t exp;

	pthread_mutex_lock(&r->lock);
	exp = s3_credentials_expiration(r->current);
	out->renewals = r->renewals;
	out->failures = r->renewal_failures;
	out->expires_in_s = exp ? exp - wall_now() : -1;
	pthread_mutex_unlock(&r->lock);
}
